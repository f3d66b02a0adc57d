"""Grooming scorer benchmark: quality on the evaluation set (per split, language and action
level) and messages scored per second on one core.

Quality: positive = the conversation reached the action (any action, or at least that
level); truth = label "grooming". F0.5 weighs precision twice as much as recall.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from covey.safety.grooming import Action, Band, Message, Scorer

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "conversations" / \
    "conversations.jsonl"
LEVELS = [Action.NOTICE, Action.GUARDIAN, Action.REPORT]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--split", action="append", help="tune, report (default: both)")
    parser.add_argument("--speed-messages", type=int, default=100_000)


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def score_all(scorer: Scorer, conversations: list[dict[str, Any]]) -> list[Action]:
    actions = []
    for c in conversations:
        participants = {name: Band(band) for name, band in c["participants"].items()}
        messages = [Message(m["from"], m["text"]) for m in c["messages"]]
        actions.append(scorer.score_conversation(participants, messages, c.get("lang")).action)
    return actions


def quality(split: str, lang: str, action: str, truth: list[bool],
            predicted: list[bool]) -> dict[str, Any]:
    tp = sum(t and p for t, p in zip(truth, predicted, strict=True))
    fp = sum(p and not t for t, p in zip(truth, predicted, strict=True))
    fn = sum(t and not p for t, p in zip(truth, predicted, strict=True))
    benign = sum(not t for t in truth)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f05 = (1.25 * precision * recall / (0.25 * precision + recall)
           if precision + recall else 0.0)
    return {"benchmark": "grooming_quality", "split": split, "lang": lang, "action": action,
            "precision": round(precision, 4), "recall": round(recall, 4),
            "f05": round(f05, 4), "benign_fpr": round(fp / benign, 4) if benign else 0.0,
            "n": len(truth)}


def run(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    scorer = Scorer()
    conversations = load(args.data)
    for split in args.split or ["tune", "report"]:
        chosen = [c for c in conversations if c["split"] == split]
        actions = score_all(scorer, chosen)
        for lang in ["all", *sorted({c["lang"] for c in chosen})]:
            idx = [i for i, c in enumerate(chosen) if lang in ("all", c["lang"])]
            truth = [chosen[i]["label"] == "grooming" for i in idx]
            yield quality(split, lang, "any", truth, [actions[i] is not Action.NONE for i in idx])
            if lang == "all":
                for level in LEVELS:
                    yield quality(split, lang, level.value, truth,
                                  [actions[i].rank >= level.rank for i in idx])
    yield speed(scorer, conversations, args.speed_messages)


def speed(scorer: Scorer, conversations: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """Messages scored per second, language known (detection runs once per conversation)."""
    work = []
    for c in conversations:
        participants = {name: Band(band) for name, band in c["participants"].items()}
        if any(b is Band.UNDER_16 for b in participants.values()):
            work.append((participants, [Message(m["from"], m["text"]) for m in c["messages"]],
                         c["lang"]))
    for lang in {w[2] for w in work}:
        scorer.matcher(lang)  # compile outside the timing
    # CPU time of this process: the machine may be shared, and one core is the target.
    done, started = 0, time.process_time()
    while done < count:
        for participants, messages, lang in work:
            state = scorer.new_state(lang)
            for message in messages:
                scored = scorer.score_message(state, participants, message)
                assert scored is not None
                state = scored[0]
            done += len(messages)
    elapsed = time.process_time() - started
    return {"benchmark": "grooming_speed", "msgs_per_s": round(done / elapsed), "n": done}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    for line in run(parser.parse_args()):
        print(json.dumps(line), flush=True)
