"""The detector extension point: the set built from settings and hot-reloaded, typed signals,
the grooming scorer as a conversation detector (direction, thresholds, cool-down, state
without text), generic signed on-device rules, and the client's on-device detection
(last good rules kept, nothing but local events). Conversations written for the tests."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from covey.client._on_device import OnDeviceDetection
from covey.client._store import Store
from covey.errors import CoveyError, InvalidInput
from covey.protocol import FrankingKey, MessageContent, b64encode
from covey.protocol.content import AttachmentRef
from covey.protocol.wire import OnDeviceRules
from covey.safety.detectors import (
    Category,
    Content,
    DetectorSet,
    Response,
    ScanContext,
    Severity,
    Signal,
    detectors_from_rules,
    rules_version,
)
from covey.safety.detectors.grooming import GroomingDetector
from covey.safety.detectors.phrase_list import PhraseListDetector
from covey.safety.policy import on_device_rules_bytes
from covey.settings import Settings

ADULT = {"mal": "16+", "kid": "under-16"}
PEERS = {"pal": "under-16", "kid": "under-16"}
ADULTS = {"mal": "16+", "bob": "16+"}
LINES = ["add me on snap, my username is mal_22",
         "don't tell your parents about this, it's our secret",
         "are you home alone right now? send me a pic"]


def _run(detector: GroomingDetector, bands: dict[str, str], sender: str,
         lines: list[str], state: str | None = None) -> tuple[list[list[Signal]], str | None]:
    out = []
    for i, text in enumerate(lines):
        context = ScanContext(f"m{i}", "dm:kid:mal", sender, bands=bands, sent_at_ms=i * 1000)
        scan = detector.scan_conversation(Content(text), context, state)
        state = scan.state
        out.append(scan.signals)
    return out, state


def _actions(signals: list[list[Signal]]) -> list[str | None]:
    return [next((s.code.split(".")[1] for s in batch if s.responses), None)
            for batch in signals]


@pytest.fixture(scope="module")
def grooming() -> GroomingDetector:
    return GroomingDetector.from_options({})


def test_settings_build_the_default_set_and_add_the_phrase_list(tmp_path: Path) -> None:
    assert Settings().detector_config() == {"grooming": {}}
    phrases = tmp_path / "p.txt"
    phrases.write_text("[high] meet me alone\n")
    config = Settings(safety_phrase_list=phrases).detector_config()
    assert config == {"grooming": {}, "phrase_list": {"path": str(phrases)}}
    assert Settings(safety_detectors={}, safety_phrase_list=phrases).detector_config() == {
        "phrase_list": {"path": str(phrases)}}
    assert DetectorSet(config).names == ("grooming", "phrase_list")
    with pytest.raises(InvalidInput, match="unknown detectors"):
        DetectorSet({"nope": {}})


def test_a_changed_file_rebuilds_its_detector_and_a_bad_edit_keeps_the_last(
        tmp_path: Path) -> None:
    phrases = tmp_path / "p.txt"
    phrases.write_text("[high] meet me alone\n")
    detectors = DetectorSet({"phrase_list": {"path": str(phrases)}})
    first = detectors.get("phrase_list")
    assert isinstance(first, PhraseListDetector) and len(first.entries) == 1
    assert detectors.get("phrase_list") is first  # unchanged: not rebuilt
    phrases.write_text("[high] meet me alone\n[low] our secret\n")
    os.utime(phrases, ns=(1, 2))  # a new stamp even within the clock's resolution
    second = detectors.get("phrase_list")
    assert isinstance(second, PhraseListDetector) and len(second.entries) == 2
    phrases.write_text("[nonsense meet me\n")
    assert detectors.get("phrase_list") is second
    phrases.unlink()
    assert detectors.get("phrase_list") is second


def test_an_operator_lexicon_added_later_is_picked_up(tmp_path: Path) -> None:
    lexicons = tmp_path / "lex"
    lexicons.mkdir()
    detectors = DetectorSet({"grooming": {"lexicons": str(lexicons)}})
    before = detectors.rules()
    (lexicons / "en.toml").write_text('language = "en"\n[behaviours.off_platform]\n'
                                      'phrases = ["hop over to blorbchat"]\n')
    after = detectors.rules()
    assert after.version != before.version
    assert "blorbchat" in json.loads(after.rules["grooming"])["lexicons"]["en.toml"]
    grooming = detectors.get("grooming")
    assert isinstance(grooming, GroomingDetector)
    (signals,), _ = _run(grooming, ADULT, "mal", ["hop over to blorbchat with me"])
    assert [s.code for s in signals] == ["grooming.off_platform"]


def test_signals_are_typed_with_span_reason_and_responses(grooming: GroomingDetector) -> None:
    signals, state = _run(grooming, ADULT, "mal", LINES)
    hit = signals[0][0]
    assert (hit.category, hit.code, hit.responses) == (
        Category.GROOMING_OR_ENTICEMENT, "grooming.off_platform", frozenset())
    assert hit.span is not None and hit.span.field == "text"
    assert LINES[0][hit.span.start:hit.span.end] in ("add me on snap", "my username is")
    assert "another app" in hit.reason
    alert = signals[1][-1]
    assert alert.code == "grooming.guardian" and alert.responses == {
        Response.NOTICE, Response.GUARDIAN}
    assert "secret" in alert.notice and alert.detail["behaviours"] == [
        "secrecy", "off_platform"]
    report = signals[2][-1]
    assert report.responses == {Response.NOTICE, Response.GUARDIAN, Response.REPORT}
    # The evidence names earlier messages by id and span; the state holds no text.
    assert [e["message_id"] for e in report.detail["evidence"]][:2] == ["m0", "m1"]
    assert state is not None
    for word in ("snap", "mal_22", "parents", "secret ", "alone"):
        assert word not in state


def test_who_says_what_and_adults_are_never_scored(grooming: GroomingDetector) -> None:
    assert _actions(_run(grooming, ADULT, "mal", LINES)[0]) == [None, "guardian", "report"]
    # The same words between two children weigh 0.2: nothing.
    assert _actions(_run(grooming, PEERS, "pal", LINES)[0]) == [None, None, None]
    # The child saying them to an adult weighs 0.1.
    assert _actions(_run(grooming, ADULT, "kid", LINES)[0]) == [None, None, None]
    signals, state = _run(grooming, ADULTS, "mal", LINES)
    assert signals == [[], [], []] and state is None


def test_thresholds_are_options_and_the_cool_down_holds(grooming: GroomingDetector) -> None:
    strict = GroomingDetector.from_options({"notice": 0.9, "guardian": 1.5, "report": 2.5})
    assert _actions(_run(strict, ADULT, "mal", LINES[:1])[0]) == ["notice"]
    with pytest.raises(InvalidInput, match="thresholds"):
        GroomingDetector.from_options({"notice": 3, "guardian": 2})
    with pytest.raises(InvalidInput, match="unknown grooming options"):
        GroomingDetector.from_options({"noticee": 1})
    _, state = _run(grooming, ADULT, "mal", LINES)
    again, _ = _run(grooming, ADULT, "mal", [LINES[0], LINES[1]], state)
    assert _actions(again) == [None, None]  # already alerted at report: no new alert


def test_phrase_list_signals_act_by_severity() -> None:
    detector = PhraseListDetector.from_text("[high, category=grooming_or_enticement] "
                                            "meet me alone\n[medium] our secret\n")
    context = ScanContext("m1", "dm:kid:mal", "mal")
    high, medium = detector.scan(Content("ok meet me alone, our secret"), context)
    assert high.category is Category.GROOMING_OR_ENTICEMENT and high.span is not None
    assert high.asks(Response.REPORT) and high.asks(Response.GUARDIAN)
    assert medium.asks(Response.REPORT) and not medium.asks(Response.GUARDIAN)
    assert not medium.asks(Response.REPORT, Severity.HIGH)
    assert not high.asks(Response.NOTICE)


def test_content_carries_attachment_bytes_by_blob_id() -> None:
    ref = AttachmentRef(blob_id="blob_" + "a" * 20, key="A" * 43, sha256="0" * 64, size=3,
                        name="photo.png", mime="image/png")
    message = MessageContent(kind="attachment", message_id="MSGID0000000000000001",
                             conversation_id="dm:kid:mal", sent_at_ms=1, text="look",
                             attachments=(ref,), franking_key=FrankingKey.generate().to_b64())
    content = Content.of(message, {ref.blob_id: b"png"})
    (attachment,) = content.attachments
    assert (attachment.name, attachment.mime, attachment.data) == ("photo.png", "image/png",
                                                                   b"png")
    assert Content.of(message).attachments[0].data is None


def test_rules_round_trip_and_unknown_detectors_are_skipped(tmp_path: Path) -> None:
    phrases = tmp_path / "p.txt"
    phrases.write_text("[high] meet me alone\n")
    rules = DetectorSet({"grooming": {"report": 3.0},
                         "phrase_list": {"path": str(phrases)}}).rules()
    assert rules.version == hashlib.sha256(json.dumps(
        dict(rules.rules), sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    built = detectors_from_rules({**rules.rules, "future_detector": "x"})
    assert [d.name for d in built] == ["grooming", "phrase_list"]
    grooming = built[0]
    assert isinstance(grooming, GroomingDetector) and grooming.scorer.settings.report == 3.0
    with pytest.raises(CoveyError):
        detectors_from_rules({"grooming": "not json"})


def _signed(key: Ed25519PrivateKey, detectors: dict[str, str]) -> OnDeviceRules:
    version = rules_version(detectors)
    signature = key.sign(on_device_rules_bytes("on-device", version, detectors))
    return OnDeviceRules(mode="on-device", version=version, detectors=detectors,
                         signature=b64encode(signature))


def test_on_device_detection_keeps_the_last_good_rules(tmp_path: Path) -> None:
    from covey.client._events import FrankingEvidence, IncomingMessage, SafetyNotice
    from covey.protocol.franking import FrankingContext
    from covey.protocol.secrets import FrankingCommitment

    key = Ed25519PrivateKey.generate()
    public = b64encode(key.public_key().public_bytes_raw())
    store = Store.create(tmp_path / "kid.db", "pw", scrypt_n=2**12)
    detection = OnDeviceDetection(store)
    good = _signed(key, {"grooming": GroomingDetector.from_options({}).to_rules()})
    assert detection.update(good, public) and detection.names == ("grooming",)
    with pytest.raises(CoveyError):  # not signed by the pinned key
        detection.update(_signed(Ed25519PrivateKey.generate(), {}), public)
    tampered = good.model_copy(update={"detectors": {}})
    with pytest.raises(CoveyError):
        detection.update(tampered, public)
    assert not detection.update(_signed(key, {"grooming": "{broken"}), public)
    assert detection.version == good.version

    def message(i: int, text: str) -> IncomingMessage:
        content = MessageContent(kind="text", message_id=f"MSGID00000000000000{i:02d}",
                                 conversation_id="dm:kid:mal", sent_at_ms=i, text=text,
                                 franking_key=FrankingKey.generate().to_b64())
        return IncomingMessage.from_evidence(FrankingEvidence(
            content, FrankingCommitment(bytes(32)), None,
            FrankingContext("dm:kid:mal", "mal", "DMAL0001", ("kid", "mal")), "kid", i))

    events = [e for i, text in enumerate(LINES[:2])
              for e in detection.scan(message(i, text), "kid", ["kid"])]
    (notice,) = events
    assert isinstance(notice, SafetyNotice) and notice.on_device
    assert set(notice.behaviours) == {"off_platform", "secrecy"}
    store.close()
    # Reopened, the device still has its last good rules and the conversation's state.
    reopened = OnDeviceDetection(Store.open(tmp_path / "kid.db", "pw"))
    assert reopened.version == good.version and reopened.names == ("grooming",)
    assert reopened.scan(message(3, LINES[1]), "kid", ["kid"]) == []  # cool-down kept
