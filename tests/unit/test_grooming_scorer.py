"""The scorer: who says what, decay, combinations, thresholds, cool-down, state as JSON,
and operator lexicons."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from covey.safety.grooming import (
    Action,
    Band,
    Behaviour,
    ConversationState,
    LexiconError,
    Message,
    Scorer,
    ScorerSettings,
    StateError,
    load_lexicons,
)

ADULT_CHILD = {"x": Band.ADULT, "kid": Band.UNDER_16}
STRANGER_CHILD = {"x": Band.UNVERIFIED, "kid": Band.UNDER_16}
PEERS = {"x": Band.UNDER_16, "kid": Band.UNDER_16}
ADULTS = {"x": Band.ADULT, "y": Band.ADULT}
FILLER = "what games do you play"


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer()


def score(scorer: Scorer, participants: dict[str, Band], texts: list[str],
          sender: str = "x") -> float:
    messages = [Message(sender, t) for t in texts]
    return scorer.score_conversation(participants, messages, "en").score


def test_adult_to_adult_is_never_scanned(scorer: Scorer) -> None:
    texts = ["add me on snap", "dont tell anyone", "send me a pic"]
    result = scorer.score_conversation(ADULTS, [Message("x", t) for t in texts], "en")
    assert (result.action, result.score, result.signals) == (Action.NONE, 0.0, [])
    assert scorer.score_message(ConversationState("en"), ADULTS, Message("x", "hi")) is None


def test_direction_weighs_adults_and_strangers_most(scorer: Scorer) -> None:
    texts = ["add me on snap", "dont tell ur parents"]
    adult = score(scorer, ADULT_CHILD, texts)
    assert score(scorer, STRANGER_CHILD, texts) == adult
    peer = score(scorer, PEERS, texts)
    child_to_adult = score(scorer, ADULT_CHILD, texts, sender="kid")
    assert adult > 2 * peer > 0
    assert peer > child_to_adult > 0


def test_combination_weighs_more_than_either(scorer: Scorer) -> None:
    both = score(scorer, STRANGER_CHILD, ["add me on snap", "dont tell ur parents"])
    off = score(scorer, STRANGER_CHILD, ["add me on snap"])
    secret = score(scorer, STRANGER_CHILD, ["dont tell ur parents"])
    assert both > off + secret


def test_decay_over_messages(scorer: Scorer) -> None:
    close = score(scorer, STRANGER_CHILD, ["add me on snap", "dont tell ur parents"])
    apart = score(scorer, STRANGER_CHILD, ["add me on snap", *[FILLER] * 30,
                                           "dont tell ur parents"])
    assert apart < close


def test_decay_over_time(scorer: Scorer) -> None:
    def at(gap: float) -> float:
        state = scorer.new_state("en")
        for i, text in enumerate(["add me on snap", "dont tell ur parents"]):
            scored = scorer.score_message(state, STRANGER_CHILD, Message("x", text, i * gap))
            assert scored is not None
            state, result = scored
        return result.score
    assert at(14 * 24 * 3600) < at(60)


def test_thresholds_map_scores_to_actions() -> None:
    settings = ScorerSettings(notice=1.0, guardian=2.0, report=3.0)
    assert [settings.action_for(x) for x in (0.99, 1.0, 2.5, 3.0, 9)] == [
        Action.NONE, Action.NOTICE, Action.GUARDIAN, Action.REPORT, Action.REPORT]


def test_actions_rise_as_risk_builds(scorer: Scorer) -> None:
    texts = ["add me on snap", "dont tell ur parents", "r u home alone",
             "send me a pic of u", "if u dont ill tell everyone"]
    state = scorer.new_state("en")
    actions = []
    for text in texts:
        scored = scorer.score_message(state, STRANGER_CHILD, Message("x", text))
        assert scored is not None
        state, result = scored
        actions.append(result.action)
    assert actions[0] is Action.NONE
    assert actions == sorted(actions, key=lambda a: a.rank)
    assert actions[-1] is Action.REPORT
    assert state.max_action == "report"


def test_benign_look_alike_stays_quiet(scorer: Scorer) -> None:
    texts = ["happy birthday! grandma sent you a gift card",
             "send her a photo of you opening it, love mum"]
    assert scorer.score_conversation(ADULT_CHILD, [Message("x", t) for t in texts],
                                     "en").action is Action.NONE


def test_no_second_alert_for_the_same_behaviour_within_cooldown(scorer: Scorer) -> None:
    texts = ["add me on snap, dont tell ur parents", FILLER, "add me on snap pls",
             "dont tell ur parents ok"]
    result = scorer.score_conversation(STRANGER_CHILD, [Message("x", t) for t in texts], "en")
    alerted = [b for alert in result.alerts for b in alert.behaviours
               if alert.action is result.alerts[0].action]
    assert len(alerted) == len(set(alerted))
    assert {Behaviour.OFF_PLATFORM, Behaviour.SECRECY} <= set(alerted)


def test_alert_again_after_cooldown() -> None:
    short = Scorer(settings=ScorerSettings(cooldown_messages=3))
    texts = ["add me on snap, dont tell ur parents", FILLER, FILLER, FILLER,
             "add me on snap, dont tell ur parents"]
    result = short.score_conversation(STRANGER_CHILD, [Message("x", t) for t in texts], "en")
    secrecy_alerts = [a.message_index for a in result.alerts
                      if Behaviour.SECRECY in a.behaviours]
    assert secrecy_alerts[0] == 0 and secrecy_alerts[-1] == 4


def test_alerts_carry_child_notices_in_the_conversation_language(scorer: Scorer) -> None:
    texts = ["pásame tu número", "no le digas a nadie"]
    result = scorer.score_conversation(STRANGER_CHILD, [Message("x", t) for t in texts], "es")
    notices = {n for alert in result.alerts for n in alert.notices.values()}
    assert any("otra app" in n for n in notices)


def test_signals_carry_behaviour_index_span_and_reason(scorer: Scorer) -> None:
    texts = [FILLER, "ok so... add me on snap!"]
    result = scorer.score_conversation(STRANGER_CHILD, [Message("x", t) for t in texts], "en")
    [signal] = [s for s in result.signals if s.behaviour is Behaviour.OFF_PLATFORM]
    assert signal.message_index == 1
    assert texts[1][signal.start:signal.end] == signal.matched == "add me on snap"
    assert "another app" in signal.reason and "add me on snap" in signal.reason


def test_state_round_trips_as_json(scorer: Scorer) -> None:
    state = scorer.new_state("fr")
    for text in ["t'as snap ?", "dis rien à personne"]:
        scored = scorer.score_message(state, STRANGER_CHILD, Message("x", text, 10.0))
        assert scored is not None
        state = scored[0]
    again = ConversationState.from_json(state.to_json())
    assert dataclasses.asdict(again) == dataclasses.asdict(state)
    assert again.alerts and again.max_action != "none"


@pytest.mark.parametrize("bad", ["{", "[]", '{"v": 99}', '{"v": 1, "levels": {"nope": 1}}'])
def test_bad_state_is_refused(bad: str) -> None:
    with pytest.raises(StateError):
        ConversationState.from_json(bad)


def test_operator_lexicon_extends_removes_and_adds(tmp_path: Path) -> None:
    (tmp_path / "en.toml").write_text(
        '[behaviours.off_platform]\nphrases = ["come find me on moonchat"]\n'
        'remove = ["add me on {app}"]\n', encoding="utf-8")
    (tmp_path / "it.toml").write_text(
        'language = "it"\n[behaviours.secrecy]\nnotice = "Non devi tenere segreti."\n'
        'phrases = ["non dirlo a nessuno"]\n', encoding="utf-8")
    scorer = Scorer(load_lexicons(tmp_path))
    found = {h.source for h in scorer.matcher("en").match("come find me on moonchat")}
    assert "come find me on moonchat" in found
    sources = {h.source for h in scorer.matcher("en").match("add me on snap")}
    assert "add me on {app}" not in sources
    assert {h.category for h in scorer.matcher("it").match("non dirlo a nessuno")} == {
        "secrecy"}
    assert scorer.lexicons.notice(Behaviour.SECRECY, "it") == "Non devi tenere segreti."


@pytest.mark.parametrize(("content", "problem"), [
    ("[behaviours.luring]\nphrases = ['x']\n", "unknown behaviour"),
    ("[behaviours.secrecy]\nphrases = ['tell {nobody}']\n", "unknown {nobody}"),
    ("[behaviours.secrecy]\nphrases = ['my @ here']\n", "characters"),
    ("[behaviours.secrecy\n", "not valid TOML"),
    ("[behaviours.secrecy]\nphrases = 'one'\n", "list of strings"),
])
def test_bad_operator_lexicon_is_refused(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "en.toml").write_text(content, encoding="utf-8")
    with pytest.raises(LexiconError, match=problem):
        load_lexicons(tmp_path)


def test_language_tags_and_unknown_languages(scorer: Scorer) -> None:
    texts = ["tem zap? me passa teu número", "não conta pra ninguém"]
    messages = [Message("x", t) for t in texts]
    assert scorer.score_conversation(STRANGER_CHILD, messages, "pt-BR").language == "pt"
    unknown = scorer.score_conversation(STRANGER_CHILD, messages, "xx")
    assert unknown.language == "pt" and unknown.action is not Action.NONE


def test_mitigating_context_discounts_what_came_just_before(scorer: Scorer) -> None:
    state = scorer.new_state("en")
    scored = scorer.score_message(state, ADULT_CHILD, Message("x", "i sent you a gift card"))
    assert scored is not None
    before = scored[0].levels["gifts"]
    scored = scorer.score_message(scored[0], ADULT_CHILD, Message("x", "love, grandma"))
    assert scored is not None
    assert scored[0].levels["gifts"] < 0.7 * before


def test_one_behaviour_repeated_stays_below_a_notice(scorer: Scorer) -> None:
    texts = ["are you home alone?", "r ur parents home?", "is anyone home with you?"]
    result = scorer.score_conversation(ADULT_CHILD, [Message("x", t) for t in texts], "en")
    assert {s.behaviour for s in result.signals} == {Behaviour.SUPERVISION_PROBE}
    assert len(result.signals) == 3 and result.action is Action.NONE
