"""`covey detect conversations`: the exact JSON-lines contract, through the real `covey`
entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

COVEY = str(Path(sys.executable).with_name("covey"))

GROOMING = {"id": "g1", "lang": "en",
            "participants": {"sam": "unverified", "mia": "under-16"},
            "messages": [{"from": "sam", "text": "hey ur so mature"},
                         {"from": "mia", "text": "lol thanks"},
                         {"from": "sam", "text": "add me on snap"},
                         {"from": "sam", "text": "and dont tell ur parents ok"}]}
BENIGN = {"id": 7, "participants": {"mum": "16+", "mia": "under-16"},
          "messages": [{"from": "mum", "text": "where are you? dinner is ready, love mum"}]}
ADULTS = {"id": "a1", "participants": {"x": "16+", "y": "16+"},
          "messages": [{"from": "x", "text": "add me on snap and dont tell anyone"}]}


def run(tmp_path: Path, lines: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return subprocess.run([COVEY, "detect", "conversations", str(path), *args],
                          capture_output=True, text=True, timeout=120)


def test_json_lines_in_input_order(tmp_path: Path) -> None:
    done = run(tmp_path, [json.dumps(c) for c in (GROOMING, BENIGN, ADULTS)], "--json")
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["id"] for o in out] == ["g1", 7, "a1"]
    for o in out:
        assert set(o) == {"id", "action", "score", "signals"}
        assert o["action"] in {"none", "notice", "guardian", "report"}
        for signal in o["signals"]:
            assert set(signal) == {"behaviour", "message_index", "reason"}
    grooming, benign, adults = out
    assert grooming["action"] in {"guardian", "report"}
    assert {"off_platform", "secrecy"} <= {s["behaviour"] for s in grooming["signals"]}
    assert {s["message_index"] for s in grooming["signals"]} >= {2, 3}
    assert benign["action"] == "none"
    assert adults == {"id": "a1", "action": "none", "score": 0.0, "signals": []}


def test_language_detected_when_not_given(tmp_path: Path) -> None:
    spanish = {"id": "es1", "participants": {"d": "unverified", "s": "under-16"},
               "messages": [{"from": "d", "text": "hola, qué tal? tienes whats?"},
                            {"from": "d", "text": "pásame tu número y no le digas a nadie"}]}
    done = run(tmp_path, [json.dumps(spanish)], "--json")
    assert json.loads(done.stdout)["action"] != "none"


def test_table_without_json(tmp_path: Path) -> None:
    done = run(tmp_path, [json.dumps(GROOMING)])
    assert done.returncode == 0
    assert "g1" in done.stdout and "off_platform" in done.stdout


@pytest.mark.parametrize(("line", "problem"), [
    ("not json", "line 2: not JSON"),
    ('{"participants": {"a": "16+"}, "messages": []}', 'line 2: missing "id"'),
    ('{"id": 1, "participants": {"a": "adult"}, "messages": []}', "line 2: participant 'a'"),
    ('{"id": 1, "participants": {"a": "16+"}, "messages": [{"from": "b", "text": "x"}]}',
     "line 2: message 0"),
    ('{"id": 1, "participants": {"a": "16+"}, "messages": [{"from": "a", "text": 3}]}',
     'line 2: message 0: "text"'),
])
def test_bad_input_names_the_line_and_exits_2(tmp_path: Path, line: str, problem: str) -> None:
    done = run(tmp_path, [json.dumps(BENIGN), line], "--json")
    assert done.returncode == 2
    assert problem in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_missing_file_exits_2(tmp_path: Path) -> None:
    done = subprocess.run([COVEY, "detect", "conversations", str(tmp_path / "nope.jsonl")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_help_has_an_example() -> None:
    done = subprocess.run([COVEY, "detect", "conversations", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--json" in done.stdout and '"participants"' in done.stdout


def test_operator_lexicons_and_stdin(tmp_path: Path) -> None:
    lexicons = tmp_path / "lexicons"
    lexicons.mkdir()
    (lexicons / "en.toml").write_text(
        '[behaviours.off_platform]\nphrases = ["meet me on moonchat"]\n', encoding="utf-8")
    line = json.dumps({"id": "m", "lang": "en",
                       "participants": {"s": "unverified", "k": "under-16"},
                       "messages": [{"from": "s", "text": "meet me on moonchat"}]})
    done = subprocess.run([COVEY, "detect", "conversations", "-", "--json",
                           "--lexicons", str(lexicons)], input=line + "\n",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [signal] = [s for s in json.loads(done.stdout)["signals"]
                if s["behaviour"] == "off_platform"]
    assert "moonchat" in signal["reason"]
    (lexicons / "en.toml").write_text("[behaviours.nope]\n", encoding="utf-8")
    bad = subprocess.run([COVEY, "detect", "conversations", "-", "--lexicons", str(lexicons)],
                         input=line + "\n", capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown behaviour" in bad.stderr
