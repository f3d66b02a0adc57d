"""Detector interface, registry, normalisation and the operator phrase list.

Phrases are written for the test: grooming-style behaviours, nothing sexual or real.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from covey.protocol import FrankingKey, MessageContent
from covey.protocol.content import AttachmentRef
from covey.safety.detectors import (
    Detector,
    ScanContext,
    Severity,
    available_detectors,
    build_detectors,
    normalise,
)
from covey.safety.detectors.phrase_list import (
    PhraseListDetector,
    PhraseListError,
    PhraseListFile,
    parse_phrase_list,
)

PHRASES = """\
# test list, written for the test
[high, category=secrecy] don't tell your parents
[medium, category=off-platform] let's move this to another app
[low, exact] SecretCode42
what school do you go to
"""


def fullwidth(text: str) -> str:
    """ASCII to full-width forms (U+FF01..U+FF5E), a common filter evasion."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


CONTEXT = ScanContext("MSGID0000000000000001", "dm:adult:child", "adult")


def _content(text: str, *, attachment_name: str = "") -> MessageContent:
    attachments: tuple[AttachmentRef, ...] = ()
    if attachment_name:
        attachments = (AttachmentRef(blob_id="blob_" + "a" * 20, key="A" * 43,
                                     sha256="0" * 64, size=1, name=attachment_name),)
    return MessageContent(kind="attachment" if attachments else "text",
                          message_id=CONTEXT.message_id, conversation_id=CONTEXT.conversation_id,
                          sent_at_ms=1, text=text, attachments=attachments,
                          franking_key=FrankingKey.generate().to_b64())


@pytest.fixture
def detector() -> PhraseListDetector:
    return PhraseListDetector.from_text(PHRASES)


@pytest.mark.parametrize("raw,expected", [
    ("Don't  Tell\tYour\nParents!", "dont teii your parents"),
    ("D0n\u2019t t3ll y0ur p4r3nts", "dont teii your parents"),
    ("don\u200bt te\u200dll your\u2060 pa\u00adrents", "dont teii your parents"),
    (fullwidth("DON'T TELL"), "dont teii"),
    ("dón't tèll yöur pårents", "dont teii your parents"),
    ("\u202elet's\u202c move", "iets move"),
    ("Straße", "strasse"),
    ("...", ""),
])
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_normalise_is_idempotent() -> None:
    for text in ["D0n\u2019t t3ll y0ur p4r3nts!", fullwidth("DON'T"), "Let's move this"]:
        assert normalise(normalise(text)) == normalise(text)


def test_parse_options(detector: PhraseListDetector) -> None:
    entries = detector.entries
    assert [e.line for e in entries] == [2, 3, 4, 5]
    assert entries[0].severity is Severity.HIGH and entries[0].category == "secrecy"
    assert entries[2].exact and entries[2].severity is Severity.LOW
    assert entries[3].severity is Severity.MEDIUM and not entries[3].exact


@pytest.mark.parametrize("text,line,how", [
    ("ok but don't tell your parents about this", 2, "exact"),
    ("DONT TELL YOUR PARENTS", 2, "normalised"),
    ("d0n't t3ll y0ur p4r3nts", 2, "normalised"),
    ("don\u200bt tell your parents", 2, "normalised"),
    ("d o n t  t e l l  y o u r  p a r e n t s", 2, "normalised"),
    ("dont.tell.your.parents", 2, "normalised"),
    (fullwidth("LET'S MOVE THIS TO ANOTHER APP"), 3, "normalised"),
    ("lets move this to another app!!", 3, "normalised"),
    ("my code is SecretCode42.", 4, "exact"),
    ("What school do you go to?", 5, "normalised"),
])
def test_hits(detector: PhraseListDetector, text: str, line: int, how: str) -> None:
    signals = detector.scan(_content(text), CONTEXT)
    assert [(s.detail["line"], s.detail["match"]) for s in signals] == [(line, how)]
    signal = signals[0]
    assert signal.detector == "phrase_list"
    assert signal.message_id == CONTEXT.message_id
    assert signal.sender_user == "adult"
    assert text not in str(signal.to_json())  # the signal names the phrase, not the message


@pytest.mark.parametrize("text", [
    "tell your parents everything",
    "don't tell your parent",  # a different phrase
    "secretcode42",  # exact entries are case-sensitive and literal
    "mySecretCode42x",  # literal entries respect word edges
    "what schools do you go to",
    "",
])
def test_misses(detector: PhraseListDetector, text: str) -> None:
    assert detector.scan(_content(text), CONTEXT) == []


def test_attachment_names_are_scanned(detector: PhraseListDetector) -> None:
    signals = detector.scan(_content("", attachment_name="dont_tell_your_parents.png"),
                            CONTEXT)
    assert [s.detail["line"] for s in signals] == [2]


def test_each_entry_reports_once_and_severity_thresholds(detector: PhraseListDetector) -> None:
    text = "don't tell your parents. DON'T TELL YOUR PARENTS. SecretCode42"
    signals = detector.scan(_content(text), CONTEXT)
    assert sorted(s.detail["line"] for s in signals) == [2, 4]
    by_line = {s.detail["line"]: s for s in signals}
    assert by_line[2].code == "phrase_list.secrecy"
    assert by_line[2].should_report() and not by_line[4].should_report()
    assert by_line[4].should_report(Severity.LOW)


@pytest.mark.parametrize("text,message", [
    ("[high don't", "unclosed"),
    ("[urgent] don't", "unknown severity"),
    ("[high]", "no phrase"),
    ("[category=Bad Name] x", "bad category"),
    ("!!!", "no letters"),
])
def test_bad_lists_name_the_line(text: str, message: str) -> None:
    with pytest.raises(PhraseListError) as exc:
        parse_phrase_list("# header\n" + text)
    assert "line 2" in exc.value.message and message in exc.value.message
    assert exc.value.code == "phrase_list_invalid"


def test_load_from_the_operator_file(tmp_path: Path) -> None:
    path = tmp_path / "phrases.txt"
    path.write_text(PHRASES, encoding="utf-8")
    detector = PhraseListDetector.from_options({"path": str(path)})
    assert len(detector.entries) == 4
    with pytest.raises(PhraseListError):
        PhraseListDetector.from_options({"path": str(tmp_path / "missing.txt")})
    with pytest.raises(PhraseListError):
        PhraseListDetector.from_options({})


def test_registry_finds_detectors_by_module(tmp_path: Path) -> None:
    registry = available_detectors()
    assert registry["phrase_list"] is PhraseListDetector
    assert all(issubclass(cls, Detector) for cls in registry.values())
    path = tmp_path / "phrases.txt"
    path.write_text(PHRASES, encoding="utf-8")
    built = build_detectors({"phrase_list": {"path": str(path)}})
    assert [d.name for d in built] == ["phrase_list"]
    with pytest.raises(Exception, match="unknown detectors"):
        build_detectors({"telepathy": {}})


def test_phrase_list_file_reloads_and_keeps_the_last_good_list(tmp_path: Path) -> None:
    path = tmp_path / "phrases.txt"
    assert PhraseListFile(None).current() == ("", None)
    missing = PhraseListFile(path)
    assert missing.current() == ("", None)
    path.write_text("[high] meet me alone\n")
    text, detector = missing.current()
    assert text == "[high] meet me alone\n" and detector is not None
    assert [e.phrase for e in detector.entries] == ["meet me alone"]

    path.write_text("[high meet me alone\n")  # a typo: unclosed bracket
    os.utime(path, ns=(1, 1))
    assert missing.current() == (text, detector)  # the last good list stays
    path.write_text("# nothing yet\n")
    os.utime(path, ns=(2, 2))
    assert missing.current() == ("# nothing yet\n", None)
    path.unlink()
    assert missing.current() == ("# nothing yet\n", None)
