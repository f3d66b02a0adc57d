"""Score a conversation as its messages arrive: per-message matches weighted by who says
what, accumulated per behaviour with decay, combined, mapped to an action, and an alert
only when a behaviour is new or has escalated since its last alert (the cool-down).

Pure: no I/O, no clock (callers pass message times), state in and state out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from covey.safety.grooming._behaviours import Action, Band, Behaviour
from covey.safety.grooming._language import detect_language
from covey.safety.grooming._lexicon import Lexicons, load_lexicons
from covey.safety.grooming._matcher import Hit, Matcher
from covey.safety.grooming._settings import ScorerSettings
from covey.safety.grooming._state import AlertRecord, ConversationState


@dataclass(frozen=True, slots=True)
class Signal:
    """One behaviour seen in one message, with where and why."""

    behaviour: Behaviour
    message_index: int
    start: int  # offsets in the original message text
    end: int
    matched: str  # the original text that matched
    weight: float  # what it added to the behaviour's level
    reason: str  # for a moderator


@dataclass(frozen=True, slots=True)
class Alert:
    """An action to take now, and the behaviours that call for it (new or escalated)."""

    action: Action
    behaviours: tuple[Behaviour, ...]
    message_index: int
    notices: Mapping[Behaviour, str]  # the child-facing text per behaviour


@dataclass(frozen=True, slots=True)
class MessageResult:
    """What one message did to its conversation."""

    signals: tuple[Signal, ...]
    score: float
    action: Action
    alert: Alert | None


@dataclass(frozen=True, slots=True)
class Message:
    """A message as the scorer needs it."""

    sender: str
    text: str
    time: float | None = None  # seconds (any epoch); None: only message decay applies


@dataclass
class ConversationResult:
    """A whole conversation scored in order: its highest action and everything seen."""

    action: Action
    score: float
    signals: list[Signal] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    language: str | None = None


_MISSING = object()
_RANK = {a.value: a.rank for a in Action}
_BEHAVIOURS = {b.value: b for b in Behaviour}


class Scorer:
    """The grooming scorer: lexicons compiled once, then any number of conversations."""

    def __init__(self, lexicons: Lexicons | None = None,
                 settings: ScorerSettings | None = None) -> None:
        self.lexicons = lexicons or load_lexicons()
        self.settings = settings or ScorerSettings()
        self._matchers: dict[str, Matcher] = {}
        self._direction_cache: dict[tuple[str, tuple[tuple[str, Band], ...]], float | None] = {}
        self._mitigates = {code: {name: frozenset(b.value for b in behaviours)
                                  for name, behaviours in lexicon.mitigates.items()}
                           for code, lexicon in self.lexicons.languages.items()}
        # Each pair once, under its first behaviour: scoring walks only the levels present.
        self._partners: dict[str, list[tuple[str, float]]] = {}
        for (a, b), bonus in self.settings.combinations.items():
            self._partners.setdefault(a.value, []).append((b.value, bonus))
        self._weights = {b.value: self.settings.weights.get(b, 1.0) for b in Behaviour}
        self._reason = lru_cache(maxsize=256)(self.lexicons.reason)
        self._notice = lru_cache(maxsize=256)(self.lexicons.notice)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self.lexicons.languages))

    def matcher(self, language: str) -> Matcher:
        """The compiled patterns for `language` (English when it has no lexicon)."""
        if language not in self.lexicons.languages:
            language = "en"
        if language not in self._matchers:
            self._matchers[language] = Matcher([self.lexicons.languages[language]],
                                               self.lexicons.regexes)
        return self._matchers[language]

    def detect_language(self, texts: Iterable[str]) -> str:
        return detect_language(texts, self.languages)

    def new_state(self, language: str) -> ConversationState:
        return ConversationState(language=language)

    def direction_weight(self, sender: str, participants: Mapping[str, Band]) -> float | None:
        """How much `sender`'s words count, or None when no under-16 is in the
        conversation (adult-to-adult chats are end-to-end encrypted and never scanned)."""
        key = (sender, tuple(participants.items()))
        cached = self._direction_cache.get(key, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        weight: float | None = None
        if any(band is Band.UNDER_16 for band in participants.values()):
            sender_band = participants.get(sender, Band.UNVERIFIED)
            recipients = [b for n, b in participants.items() if n != sender] or [sender_band]
            weight = max(self.settings.direction.get((sender_band, band), 0.0)
                         for band in recipients)
        if len(self._direction_cache) > 4096:
            self._direction_cache.clear()
        self._direction_cache[key] = weight
        return weight

    def score_message(self, state: ConversationState, participants: Mapping[str, Band],
                      message: Message) -> tuple[ConversationState, MessageResult] | None:
        """The conversation's new state after `message`, and what it called for; None
        when the conversation is not scanned (no under-16 participant)."""
        direction = self.direction_weight(message.sender, participants)
        if direction is None:
            return None
        s = self.settings
        language = state.language or "en"
        hits = self.matcher(language).match(message.text) if direction > 0 else []
        if not hits and not state.levels and not state.mitigators:
            # Nothing seen yet and nothing now: the common case, kept cheap.
            quiet = ConversationState(state.language, state.messages + 1,
                                      message.time if message.time is not None
                                      else state.last_time, {}, {}, state.alerts,
                                      state.max_score, state.max_action)
            return quiet, MessageResult((), 0.0, Action.NONE, None)
        # A new state each message (callers may keep the old one); alert records are
        # replaced, never changed, so copying the dictionaries is enough.
        fade = s.message_decay
        if message.time is not None and state.last_time is not None:
            fade *= 0.5 ** (max(0.0, message.time - state.last_time) / s.half_life_s)
        m_fade = s.mitigator_decay
        state = ConversationState(
            state.language, state.messages, state.last_time,
            {k: v * fade for k, v in state.levels.items() if v * fade > 0.01},
            {k: v * m_fade for k, v in state.mitigators.items() if v * m_fade > 0.05},
            dict(state.alerts), state.max_score, state.max_action)
        index = state.messages
        mitigates = self._mitigates.get(language, {})
        for hit in hits:
            if hit.mitigator:
                state.mitigators[hit.category] = 1.0
                # Context explains what came just before it too ("I sent you a gift card"
                # ... "love, grandma"), though never an action already taken.
                for behaviour in mitigates.get(hit.category, ()):
                    if behaviour in state.levels:
                        state.levels[behaviour] *= s.mitigation_earlier
        signals = [self._add(state, hit, direction, index, message.text, language)
                   for hit in hits if not hit.mitigator]
        state.messages = index + 1
        if message.time is not None:
            state.last_time = message.time
        score = self.conversation_score(state)
        action = s.action_for(score)
        if score > state.max_score:
            state.max_score = score
        if action.rank > _RANK[state.max_action]:
            state.max_action = action.value
        # Without a new signal no behaviour is new or escalated (levels only fade).
        alert = self._alert(state, action, index, message.time, language) if signals else None
        return state, MessageResult(tuple(signals), score, action, alert)

    def _add(self, state: ConversationState, hit: Hit, direction: float, index: int,
             text: str, language: str) -> Signal:
        """Raise the hit's behaviour level (capped, mitigated) and describe it."""
        s = self.settings
        behaviour = _BEHAVIOURS[hit.category]
        base = self._weights[hit.category]
        factor = 1.0
        mitigates = self._mitigates.get(language, {})
        for name, level in state.mitigators.items():
            if behaviour.value in mitigates.get(name, ()):
                factor = min(factor, 1.0 - (1.0 - s.mitigation) * min(1.0, level))
        added = base * hit.weight * direction * factor
        current = state.levels.get(behaviour.value, 0.0)
        state.levels[behaviour.value] = min(base * s.cap, current + added)
        matched = text[hit.start:hit.end]
        reason = (f"{self._reason(behaviour, language)}: “{matched}” "
                  f"(lexicon {language}: {hit.source!r})")
        return Signal(behaviour, index, hit.start, hit.end, matched, round(added, 4), reason)

    def conversation_score(self, state: ConversationState) -> float:
        """Levels summed, plus combinations, plus breadth (several behaviours at once)."""
        s = self.settings
        levels = state.levels
        score = sum(levels.values())
        if len(levels) < 2:
            return score
        present_level = s.present
        for a, level_a in levels.items():
            if level_a < present_level:
                continue
            for b, bonus in self._partners.get(a, ()):
                level_b = levels.get(b)
                # Both said in full: a weak word ("pic", "pick you up") combines with nothing.
                if level_b is not None and level_b >= present_level:
                    score += bonus * min(level_a, level_b)
        present = sum(1 for v in levels.values() if v >= s.present)
        score += s.breadth_bonus * max(0, present - 2)
        return score

    def _alert(self, state: ConversationState, action: Action, index: int,
               time: float | None, language: str) -> Alert | None:
        """An alert for behaviours that are new, or escalated, outside their cool-down."""
        if action is Action.NONE or not state.levels:
            return None
        s = self.settings
        due = []
        for key, level in sorted(state.levels.items(), key=lambda kv: -kv[1]):
            if level < s.present:
                continue
            last = state.alerts.get(key)
            if last is not None:
                recent = index - last.message_index < s.cooldown_messages and (
                    time is None or last.time is None or time - last.time < s.cooldown_s)
                if recent and _RANK[last.action] >= action.rank:
                    continue
            due.append(_BEHAVIOURS[key])
        if not due:
            return None
        for behaviour in due:
            state.alerts[behaviour.value] = AlertRecord(action.value, index, time)
        notices = {b: self._notice(b, language) for b in due}
        return Alert(action, tuple(due), index, notices)

    def score_conversation(self, participants: Mapping[str, Band],
                           messages: Sequence[Message],
                           language: str | None = None) -> ConversationResult:
        """Every message in order; the result's action is the highest reached."""
        if not any(band is Band.UNDER_16 for band in participants.values()):
            return ConversationResult(Action.NONE, 0.0)
        # "pt-BR" is "pt"; a language without a lexicon is scored with the closest one.
        code = (language or "").lower().replace("_", "-").split("-")[0]
        if code not in self.lexicons.languages:
            code = self.detect_language(m.text for m in messages)
        language = code
        state = self.new_state(language)
        result = ConversationResult(Action.NONE, 0.0, language=language)
        for message in messages:
            scored = self.score_message(state, participants, message)
            if scored is None:
                break
            state, outcome = scored
            result.signals.extend(outcome.signals)
            if outcome.alert is not None:
                result.alerts.append(outcome.alert)
        result.action = Action(state.max_action)
        result.score = round(state.max_score, 4)
        return result
