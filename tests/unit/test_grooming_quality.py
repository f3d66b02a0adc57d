"""Quality floors on the evaluation set's "report" split (never tuned on): the issue's
targets overall (F0.5 >= 0.90, benign false-positive rate <= 3%), and per language."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from covey.safety.grooming import Action, Band, Message, Scorer, detect_language

DATA = Path(__file__).resolve().parent.parent / "data" / "conversations" / "conversations.jsonl"


def load() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def scored() -> list[tuple[dict[str, Any], Action]]:
    scorer = Scorer()
    out = []
    for c in load():
        if c["split"] != "report":
            continue
        participants = {n: Band(b) for n, b in c["participants"].items()}
        messages = [Message(m["from"], m["text"]) for m in c["messages"]]
        out.append((c, scorer.score_conversation(participants, messages, c["lang"]).action))
    return out


def f05_and_fpr(rows: list[tuple[dict[str, Any], Action]]) -> tuple[float, float]:
    tp = sum(c["label"] == "grooming" and a is not Action.NONE for c, a in rows)
    fp = sum(c["label"] == "benign" and a is not Action.NONE for c, a in rows)
    fn = sum(c["label"] == "grooming" and a is Action.NONE for c, a in rows)
    benign = sum(c["label"] == "benign" for c, _ in rows)
    precision, recall = tp / max(1, tp + fp), tp / max(1, tp + fn)
    f05 = 1.25 * precision * recall / max(1e-9, 0.25 * precision + recall)
    return f05, fp / max(1, benign)


def test_set_meets_its_own_specification() -> None:
    conversations = load()
    assert len(conversations) >= 400
    per_lang = Counter(c["lang"] for c in conversations)
    assert all(per_lang[lang] >= 40 for lang in ("es", "fr", "de", "pt")) and per_lang["en"]
    assert sum(c["label"] == "benign" for c in conversations) >= 0.4 * len(conversations)
    assert any(15 <= len(c["messages"]) <= 25 and c["label"] == "grooming"
               for c in conversations)
    assert {c["split"] for c in conversations} == {"tune", "report"}
    assert Counter(c["source"] for c in conversations)["handwritten"] >= 40


def test_report_split_meets_the_targets(scored: list[tuple[dict[str, Any], Action]]) -> None:
    f05, fpr = f05_and_fpr(scored)
    assert f05 >= 0.90, f05
    assert fpr <= 0.03, fpr


@pytest.mark.parametrize("lang", ["en", "es", "fr", "de", "pt"])
def test_each_language_holds_up(scored: list[tuple[dict[str, Any], Action]],
                                lang: str) -> None:
    f05, _ = f05_and_fpr([(c, a) for c, a in scored if c["lang"] == lang])
    assert f05 >= 0.85, f05


def test_no_benign_conversation_reaches_a_report(
        scored: list[tuple[dict[str, Any], Action]]) -> None:
    assert [c["id"] for c, a in scored if c["label"] == "benign" and a is Action.REPORT] == []


def test_language_is_detected_per_conversation() -> None:
    report = [c for c in load() if c["split"] == "report"]
    languages = ["en", "es", "fr", "de", "pt"]
    right = sum(detect_language([m["text"] for m in c["messages"]], languages) == c["lang"]
                for c in report)
    assert right >= 0.97 * len(report), right
