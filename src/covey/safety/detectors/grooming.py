"""The grooming scorer (`covey.safety.grooming`) as a conversation detector.

Each message's behaviours become signals with their span and reason; when the
conversation's score reaches a threshold for a behaviour that is new or has escalated
(outside the cool-down), one more signal asks for the action: a notice to the child,
also a guardian alert, also a moderator report naming the messages that carry the
evidence. The state kept per conversation is numbers and message ids, never text.

Options: `lexicons` (an operator directory of TOML files merged on top of the shipped
lexicons, watched for changes), and the thresholds `notice`, `guardian`, `report`.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from covey.errors import InvalidInput
from covey.safety.detectors._base import (
    Category,
    Content,
    ConversationDetector,
    Response,
    Scan,
    ScanContext,
    Severity,
    Signal,
    Span,
)
from covey.safety.grooming import (
    Action,
    Band,
    ConversationState,
    LexiconError,
    Lexicons,
    Message,
    Scorer,
    ScorerSettings,
    StateError,
    load_lexicons,
)
from covey.safety.grooming._lexicon import lexicons_from_documents

# Messages whose signals a report carries as evidence (a report holds up to 11).
EVIDENCE_KEPT = 10
# A language is picked from the first message with at least this many words.
_LANGUAGE_WORDS = 3
_THRESHOLDS = ("notice", "guardian", "report")
_RESPONSES = {
    Action.NOTICE: frozenset({Response.NOTICE}),
    Action.GUARDIAN: frozenset({Response.NOTICE, Response.GUARDIAN}),
    Action.REPORT: frozenset({Response.NOTICE, Response.GUARDIAN, Response.REPORT}),
}
_SEVERITY = {Action.NONE: Severity.LOW, Action.NOTICE: Severity.LOW,
             Action.GUARDIAN: Severity.MEDIUM, Action.REPORT: Severity.HIGH}


class GroomingOptionsError(InvalidInput):
    code = "grooming_options_invalid"


def _settings(options: Mapping[str, Any]) -> ScorerSettings:
    chosen: dict[str, float] = {}
    for key in _THRESHOLDS:
        if key in options:
            try:
                chosen[key] = float(options[key])
            except (TypeError, ValueError):
                raise GroomingOptionsError(f"grooming option {key} must be a number, not "
                                           f"{options[key]!r}") from None
    base = ScorerSettings()
    settings = replace(base, notice=chosen.get("notice", base.notice),
                       guardian=chosen.get("guardian", base.guardian),
                       report=chosen.get("report", base.report))
    if not 0 < settings.notice <= settings.guardian <= settings.report:
        raise GroomingOptionsError("grooming thresholds must be 0 < notice <= guardian <= "
                                   "report")
    return settings


def _operator_files(directory: Path) -> dict[str, str]:
    if not directory.is_dir():
        raise GroomingOptionsError(f"{directory}: lexicon directory not found")
    return {path.name: path.read_text(encoding="utf-8")
            for path in sorted(directory.glob("*.toml"))}


class GroomingDetector(ConversationDetector):
    """Scores safeguarded conversations for grooming behaviour (docs/detection.md)."""

    name = "grooming"

    def __init__(self, lexicons: Lexicons, settings: ScorerSettings,
                 operator_files: Mapping[str, str] | None = None) -> None:
        self.scorer = Scorer(lexicons, settings)
        self._files = dict(operator_files or {})

    @classmethod
    def build(cls, operator_files: Mapping[str, str], settings: ScorerSettings) -> Self:
        try:
            lexicons = (lexicons_from_documents(operator_files) if operator_files
                        else load_lexicons())
        except LexiconError as exc:
            raise GroomingOptionsError(str(exc)) from exc
        return cls(lexicons, settings, operator_files)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        unknown = sorted(set(options) - {"lexicons", *_THRESHOLDS})
        if unknown:
            raise GroomingOptionsError(f"unknown grooming options {unknown}")
        files = {}
        if options.get("lexicons"):
            try:
                files = _operator_files(Path(options["lexicons"]))
            except (OSError, UnicodeDecodeError) as exc:
                raise GroomingOptionsError(f"cannot read the lexicons: {exc}") from exc
        return cls.build(files, _settings(options))

    @classmethod
    def watched_paths(cls, options: Mapping[str, Any]) -> Sequence[Path]:
        return [Path(options["lexicons"])] if options.get("lexicons") else []

    # --- on-device rules -------------------------------------------------------------

    def to_rules(self) -> str:
        """The operator's lexicon files and the thresholds, as JSON (clients ship the
        package's own lexicons; only what the operator changed travels)."""
        s = self.scorer.settings
        return json.dumps({"lexicons": self._files,
                           "thresholds": {k: getattr(s, k) for k in _THRESHOLDS}},
                          sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_rules(cls, rules: str) -> Self:
        try:
            raw = json.loads(rules)
            files = {str(k): str(v) for k, v in dict(raw.get("lexicons", {})).items()}
            thresholds = dict(raw.get("thresholds", {}))
        except (ValueError, TypeError, AttributeError) as exc:
            raise GroomingOptionsError(f"grooming rules do not parse: {exc}") from exc
        for name, text in files.items():
            try:
                tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise GroomingOptionsError(f"{name}: not valid TOML: {exc}") from exc
        return cls.build(files, _settings(thresholds))

    # --- scanning --------------------------------------------------------------------

    def scan_conversation(self, content: Content, context: ScanContext,
                          state: str | None) -> Scan:
        text = content.text
        bands = {user: _band(band) for user, band in context.bands.items()}
        bands.setdefault(context.sender_user, Band.UNVERIFIED)
        scorer_state, evidence = _load(state)
        if scorer_state.language is None and len(text.split()) >= _LANGUAGE_WORDS:
            scorer_state.language = self.scorer.detect_language([text])
        time = None if context.sent_at_ms is None else context.sent_at_ms / 1000
        scored = self.scorer.score_message(scorer_state, bands,
                                           Message(context.sender_user, text, time))
        if scored is None:  # no under-16 participant: never scanned, nothing kept
            return Scan([], state)
        scorer_state, result = scored
        signals = []
        for hit in result.signals:
            signals.append(Signal(
                detector=self.name, code=f"{self.name}.{hit.behaviour.value}",
                severity=Severity.LOW, message_id=context.message_id,
                conversation_id=context.conversation_id, sender_user=context.sender_user,
                category=Category.GROOMING_OR_ENTICEMENT, score=hit.weight,
                reason=hit.reason, span=Span("text", hit.start, hit.end),
                detail={"behaviour": hit.behaviour.value}, responses=frozenset()))
            evidence.append([context.message_id, context.sender_user, hit.behaviour.value,
                             hit.start, hit.end])
        evidence = _recent_messages(evidence)
        alert = result.alert
        if alert is not None:
            behaviours = [b.value for b in alert.behaviours]
            notice = " ".join(dict.fromkeys(alert.notices[b] for b in alert.behaviours
                                            if alert.notices.get(b)))
            signals.append(Signal(
                detector=self.name, code=f"{self.name}.{alert.action.value}",
                severity=_SEVERITY[alert.action], message_id=context.message_id,
                conversation_id=context.conversation_id, sender_user=context.sender_user,
                category=Category.GROOMING_OR_ENTICEMENT, score=result.score,
                reason=(f"conversation score {result.score:.2f} reached the "
                        f"{alert.action.value} threshold; behaviours: "
                        f"{', '.join(behaviours)}"),
                span=None, responses=_RESPONSES[alert.action], notice=notice,
                detail={"action": alert.action.value, "behaviours": behaviours,
                        "score": round(result.score, 4),
                        "evidence": [{"message_id": m, "sender_user": s, "behaviour": b,
                                      "start": a, "end": z}
                                     for m, s, b, a, z in evidence]}))
        return Scan(signals, _dump(scorer_state, evidence))


def _band(value: str) -> Band:
    try:
        return Band(value)
    except ValueError:
        return Band.UNVERIFIED


def _load(state: str | None) -> tuple[ConversationState, list[list[Any]]]:
    if not state:
        return ConversationState(), []
    try:
        raw = json.loads(state)
        return ConversationState.from_json(raw["scorer"]), list(raw.get("evidence", []))
    except (ValueError, KeyError, TypeError, StateError):
        # A state from an older version: start the conversation afresh, not fail it.
        return ConversationState(), []


def _dump(state: ConversationState, evidence: list[list[Any]]) -> str:
    return json.dumps({"scorer": state.to_json(), "evidence": evidence},
                      separators=(",", ":"))


def _recent_messages(evidence: list[list[Any]]) -> list[list[Any]]:
    """The spans of the last `EVIDENCE_KEPT` messages that carried a signal."""
    ids: list[str] = []
    for entry in reversed(evidence):
        if entry[0] not in ids:
            ids.append(entry[0])
    keep = set(ids[:EVIDENCE_KEPT])
    return [entry for entry in evidence if entry[0] in keep]
