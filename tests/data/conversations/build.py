# ruff: noqa: RUF001  (look-alike letters are one of the evasions the set exercises)
"""Build the grooming evaluation set: `conversations.jsonl` from the hand-written
conversations (`handwritten*.txt`) and conversations composed from
hand-written message pools (`pools.py`), with a fixed split stratified by language and label.

    python tests/data/conversations/build.py      # rewrites conversations.jsonl (seeded)
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from pools import BENIGN, PEER, POOLS  # noqa: E402

SEED = 20261201
STAGES = ["flattery", "age_probe", "age_deception", "location_probe", "supervision_probe",
          "off_platform", "isolation", "gifts", "secrecy", "photo_request", "meet_request",
          "pressure"]
COUNTS = {"en": 80, "es": 40, "fr": 40, "de": 40, "pt": 40}  # composed, per label
ADULT_NAMES = ["alex", "sam_j", "chris", "robin", "jordan", "kai", "morgan", "taylor"]
KID_NAMES = ["mia", "leo", "zoe", "noah", "ella", "luca", "nina", "theo"]
_CYRILLIC = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х"})
_LEET = str.maketrans({"a": "4", "e": "3", "o": "0", "i": "1", "s": "5"})


def parse_handwritten(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("= "):
            cid, lang, label, behaviours, people = (p.strip() for p in line[2:].split("|"))
            participants = dict(p.strip().split("=") for p in people.split(","))
            out.append({"id": cid, "lang": lang, "label": label,
                        "behaviours": [] if behaviours == "-" else behaviours.split(","),
                        "participants": participants, "messages": [],
                        "source": "handwritten"})
            continue
        name, text = line.split(":", 1)
        out[-1]["messages"].append({"from": name.strip(), "text": text.strip()})
    return out


def obfuscate(text: str, rng: random.Random, lang: str) -> str:
    """One of the evasions people use, applied to a whole line or its longest word."""
    words = text.split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    kind = rng.choice(["spaced", "leet", "cyrillic", "repeat", "dots", "zero_width",
                       "fullwidth", "emoji"])
    if kind == "emoji" and lang == "en" and "snap" in text:
        return text.replace("snapchat", "👻").replace("snap", "👻")
    if kind == "spaced" or kind == "emoji":
        words[longest] = " ".join(words[longest])
    elif kind == "leet":
        return text.translate(_LEET)
    elif kind == "cyrillic":
        return text.translate(_CYRILLIC)
    elif kind == "repeat":
        words = [w + w[-1] * 3 if len(w) > 3 and w[-1].isalpha() else w for w in words]
    elif kind == "dots":
        words[longest] = ".".join(words[longest])
    elif kind == "zero_width":
        words[longest] = "\u200b".join(words[longest])
    elif kind == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
    return " ".join(words)


def compose_grooming(lang: str, n: int, rng: random.Random) -> dict[str, Any]:
    pool = POOLS[lang]
    risk: dict[str, list[str]] = pool["risk"]  # type: ignore[assignment]
    kind = ["short", "slow", "obfuscated"][n % 3]
    k = rng.choice([2, 3, 3, 4, 4, 5])
    chosen = sorted(rng.sample(STAGES, k), key=STAGES.index)
    adult, kid = rng.choice(ADULT_NAMES), rng.choice(KID_NAMES)
    messages: list[dict[str, str]] = []
    filler = 2 if kind != "slow" else rng.randint(4, 6)
    for behaviour in chosen:
        for _ in range(rng.randint(0, filler)):
            who = rng.random() < 0.5
            line = rng.choice(pool["chat"] if who else pool["kid"])  # type: ignore[arg-type]
            messages.append({"from": adult if who else kid, "text": line})
        line = rng.choice(risk[behaviour])
        if kind == "obfuscated" and rng.random() < 0.7:
            line = obfuscate(line, rng, lang)
        messages.append({"from": adult, "text": line})
        if rng.random() < 0.6:
            messages.append({"from": kid, "text": rng.choice(pool["kid"])})  # type: ignore[arg-type]
    if kind == "slow":
        while len(messages) < 15:
            messages.insert(rng.randint(0, len(messages)),
                            {"from": adult, "text": rng.choice(pool["chat"])})  # type: ignore[arg-type]
    band = rng.choice(["unverified", "unverified", "16+"])
    return {"id": f"c-{lang}-g{n:03d}", "lang": lang, "label": "grooming",
            "behaviours": chosen, "participants": {adult: band, kid: "under-16"},
            "messages": messages, "source": "composed", "kind": kind}


def compose_benign(lang: str, n: int, rng: random.Random) -> dict[str, Any]:
    pool = POOLS[lang]
    kind = ["scenario", "scenario", "peer", "chat", "adults"][n % 5]
    adult, kid = rng.choice(ADULT_NAMES), rng.choice(KID_NAMES)
    participants = {adult: "16+", kid: "under-16"}
    messages: list[dict[str, str]] = []
    if kind == "scenario":
        for role, text in rng.choice(BENIGN[lang]):
            if rng.random() < 0.3:
                messages.append({"from": kid, "text": rng.choice(pool["kid"])})  # type: ignore[arg-type]
            messages.append({"from": adult if role == "adult" else kid, "text": text})
    elif kind == "peer":
        friend = rng.choice([k for k in KID_NAMES if k != kid])
        participants = {friend: "under-16", kid: "under-16"}
        for i, text in enumerate(rng.choice(PEER[lang])):
            messages.append({"from": friend if i % 2 == 0 else kid, "text": text})
    elif kind == "chat":
        for _ in range(rng.randint(6, 18)):
            who = rng.random() < 0.5
            line = rng.choice(pool["chat"] if who else pool["kid"])  # type: ignore[arg-type]
            messages.append({"from": adult if who else kid, "text": line})
    else:  # two 16+ people saying risky things: never scanned, never an action
        other = rng.choice([a for a in ADULT_NAMES if a != adult])
        participants = {adult: "16+", other: "16+"}
        risk: dict[str, list[str]] = pool["risk"]  # type: ignore[assignment]
        for behaviour in rng.sample(STAGES, 3):
            messages.append({"from": adult, "text": rng.choice(risk[behaviour])})
            messages.append({"from": other, "text": rng.choice(pool["kid"])})  # type: ignore[arg-type]
    return {"id": f"c-{lang}-b{n:03d}", "lang": lang, "label": "benign", "behaviours": [],
            "participants": participants, "messages": messages, "source": "composed",
            "kind": kind}


def assign_split(conversations: list[dict[str, Any]]) -> None:
    """Half "tune", half "report" within each (language, label), by a hash of the id."""
    strata: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in conversations:
        strata.setdefault((c["lang"], c["label"]), []).append(c)
    for members in strata.values():
        members.sort(key=lambda c: hashlib.sha256(c["id"].encode()).hexdigest())
        for i, c in enumerate(members):
            c["split"] = "tune" if i % 2 == 0 else "report"


def main() -> None:
    rng = random.Random(SEED)
    conversations = parse_handwritten(HERE / "handwritten.txt")
    for lang, count in COUNTS.items():
        conversations += [compose_grooming(lang, n, rng) for n in range(count)]
        conversations += [compose_benign(lang, n, rng) for n in range(count)]
    assign_split(conversations)
    # Later batches are split among themselves: the earlier split never moves.
    for batch in ("handwritten_2.txt", "handwritten_3.txt"):
        later = parse_handwritten(HERE / batch)
        assign_split(later)
        conversations += later
    with (HERE / "conversations.jsonl").open("w", encoding="utf-8") as out:
        for c in conversations:
            out.write(json.dumps(c, ensure_ascii=False) + "\n")
    print(f"{len(conversations)} conversations")


if __name__ == "__main__":
    main()
