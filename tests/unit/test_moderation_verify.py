"""Report verification against real franking: forged, altered, spliced and swapped
evidence is caught item by item; group and multi-device conversations verify."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import pytest

from covey.client._events import FrankingEvidence
from covey.errors import InvalidInput
from covey.moderation import (
    EvidenceItem,
    ItemStatus,
    Report,
    ReportCategory,
    ReportUnverifiable,
    report_fingerprint,
    verify_report,
)
from covey.moderation.evidence import MAX_ATTACHMENTS_PER_REPORT
from covey.moderation.simulate import FrankedConversation
from covey.moderation.verify import attachments_to_fetch
from covey.protocol import (
    FrankingKey,
    FrankingTag,
    ServerFrankingKey,
    b64encode,
    dm_conversation_id,
    encrypt_attachment,
)
from covey.protocol.attachments import AttachmentStatus
from covey.protocol.content import MAX_ATTACHMENTS_PER_MESSAGE, AttachmentRef
from covey.protocol.ids import MessageKey
from tests.unit._salamander import two_key_ciphertext

SERVER_KEY = ServerFrankingKey(bytes(range(32)))
GROUP = "grp_testgroup01"


def _dm(a: str = "alice", b: str = "bob") -> FrankedConversation:
    return FrankedConversation(SERVER_KEY, dm_conversation_id(a, b), (a, b))


def _chat() -> FrankedConversation:
    """An invented chat: alice and bob, five messages, bob reports the last."""
    conv = _dm()
    conv.send("alice", "DALICE01", "hey, how was the football match?")
    conv.send("bob", "DBOB0001", "we won 3-1")
    conv.send("alice", "DALICE01", "nice. what school do you go to?")
    conv.send("bob", "DBOB0001", "why do you ask")
    conv.send("alice", "DALICE01", "let's talk on another app, don't tell your parents")
    return conv


def _report(items: tuple[EvidenceItem, ...], reported: str, reporter: str = "bob",
            category: ReportCategory = ReportCategory.GROOMING_OR_ENTICEMENT,
            comment: str = "") -> Report:
    return Report(reporter=reporter, reported_message_id=reported, category=category,
                  comment=comment, messages=items)


def _alter(item: EvidenceItem, path: str, value: Any) -> EvidenceItem:
    """Change one field (dotted path) of an evidence item and re-validate it."""
    data = item.model_dump(mode="json")
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[key]
    target[last] = value
    return EvidenceItem.model_validate(data)


def _status(verification: Any, message_id: str) -> ItemStatus:
    return next(i.status for i in verification.items if i.item.message_id == message_id)


def test_genuine_dm_report_verifies_every_item() -> None:
    conv = _chat()
    items = conv.history("bob")
    result = verify_report(_report(items, items[-1].message_id), SERVER_KEY)
    assert result.all_verified
    assert [i.status for i in result.items] == [ItemStatus.VERIFIED] * 5
    assert result.reported.item.message_id == items[-1].message_id
    assert result.submitted_in_order
    transcript = result.transcript()
    assert transcript["summary"] == {"total": 5, "verified": 5, "reported_verified": True}


def test_forged_tag_is_tag_invalid_and_never_verified() -> None:
    conv = _chat()
    items = list(conv.history("bob"))
    items[-1] = _alter(items[-1], "tag", b64encode(os.urandom(32)))
    result = verify_report(_report(tuple(items), items[-1].message_id), SERVER_KEY)
    assert result.reported.status is ItemStatus.TAG_INVALID
    assert not result.reported.verified
    assert len(result.verified_items) == 4


def test_tag_made_with_another_server_key_is_invalid() -> None:
    conv = _chat()
    other = FrankedConversation(ServerFrankingKey.generate(), conv.conversation_id,
                                conv.participants, messages=conv.messages)
    items = other.history("bob")
    with pytest.raises(ReportUnverifiable) as caught:
        verify_report(_report(items, items[-1].message_id), SERVER_KEY)
    assert caught.value.code == "report_unverifiable"
    assert caught.value.status == 422
    assert {i["status"] for i in caught.value.details["items"]} == {"tag_invalid"}


def test_altered_plaintext_does_not_open_the_commitment() -> None:
    conv = _chat()
    items = list(conv.history("bob"))
    items[2] = _alter(items[2], "content.text", "what's your favourite band?")
    result = verify_report(_report(tuple(items), items[-1].message_id), SERVER_KEY)
    assert _status(result, items[2].message_id) is ItemStatus.COMMITMENT_MISMATCH
    assert _status(result, items[-1].message_id) is ItemStatus.VERIFIED


def test_reused_franking_key_with_different_text_does_not_open() -> None:
    conv = _dm()
    fk = FrankingKey.generate()
    first = conv.send("alice", "DALICE01", "see you at the library", franking_key=fk)
    second = conv.send("alice", "DALICE01", "see you at the park", franking_key=fk)
    # The reporter claims the first message said what the second said (same key).
    claimed = _alter(conv.evidence(first, "bob"), "content.text", second.content.text)
    genuine = conv.evidence(second, "bob")
    result = verify_report(_report((claimed, genuine), genuine.message_id), SERVER_KEY)
    assert _status(result, claimed.message_id) is ItemStatus.COMMITMENT_MISMATCH
    assert _status(result, genuine.message_id) is ItemStatus.VERIFIED


def test_evidence_from_another_conversation_is_spliced() -> None:
    conv = _chat()
    elsewhere = _dm("bob", "carol")
    elsewhere.clock_ms = conv.clock_ms - 10_000
    foreign = elsewhere.evidence(elsewhere.send("carol", "DCAROL01", "ok see you tomorrow"),
                                 "bob")
    items = (*conv.history("bob")[:-1], foreign, conv.history("bob")[-1])
    result = verify_report(_report(items, items[-1].message_id), SERVER_KEY)
    spliced = next(i for i in result.items if i.item.message_id == foreign.message_id)
    assert spliced.status is ItemStatus.SPLICED
    assert "dm:bob:carol" in spliced.findings[0].detail
    assert len(result.verified_items) == 5


def test_relabelling_a_foreign_message_into_the_conversation_breaks_franking() -> None:
    conv = _chat()
    elsewhere = _dm("bob", "carol")
    foreign = elsewhere.evidence(elsewhere.send("carol", "DCAROL01", "hello"), "bob")
    moved = _alter(_alter(_alter(foreign, "context.conversation_id", conv.conversation_id),
                          "content.conversation_id", conv.conversation_id),
                   "context.participants", ["alice", "bob"])
    items = (*conv.history("bob"), moved)
    result = verify_report(_report(items, items[-2].message_id), SERVER_KEY)
    found = next(i for i in result.items if i.item.message_id == moved.message_id)
    codes = {f.code for f in found.findings}
    assert {ItemStatus.COMMITMENT_MISMATCH, ItemStatus.TAG_INVALID} <= codes


def test_attachment_verifies_and_decrypts_with_the_revealed_key() -> None:
    conv = _dm()
    image = os.urandom(2048)  # generated bytes standing in for an image
    ref = conv.upload(image, name="photo.png")
    sent = conv.send("alice", "DALICE01", attachments=(ref,))
    item = conv.evidence(sent, "bob")
    result = verify_report(_report((item,), item.message_id), SERVER_KEY, blobs=conv.blobs)
    check = result.reported.attachments[0]
    assert result.reported.verified and check.verified
    assert check.plaintext == image
    assert check.plaintext_sha256 == hashlib.sha256(image).hexdigest()


def test_swapped_attachment_ciphertext_fails_only_the_attachment() -> None:
    conv = _dm()
    ref = conv.upload(os.urandom(1024), name="photo.png")
    sent = conv.send("alice", "DALICE01", "look", attachments=(ref,))
    item = conv.evidence(sent, "bob")
    other_blob, _key, _digest = encrypt_attachment(os.urandom(1024))
    result = verify_report(_report((item,), item.message_id), SERVER_KEY,
                           blobs={ref.blob_id: other_blob})
    # The text verifies on its commitment and tag alone; the attachment is not evidence.
    assert result.reported.verified and result.reported.status is ItemStatus.VERIFIED
    (check,) = result.reported.attachments
    assert check.status is AttachmentStatus.HASH_MISMATCH and check.plaintext is None
    assert result.reported.verified_attachments == ()
    assert result.transcript()["items"][0]["attachments"][0]["status"] == "hash_mismatch"


@pytest.mark.parametrize(("delta", "status"), [(1, AttachmentStatus.SIZE_MISMATCH),
                                                (-1, AttachmentStatus.SIZE_MISMATCH),
                                                (0, AttachmentStatus.VERIFIED)])
def test_committed_size_must_be_the_plaintext_size(delta: int,
                                                  status: AttachmentStatus) -> None:
    conv = _dm()
    honest = conv.upload(os.urandom(500), name="photo.png")
    ref = AttachmentRef(**{**honest.model_dump(), "size": honest.size + delta})
    item = conv.evidence(conv.send("alice", "DALICE01", "see", attachments=(ref,)), "bob")
    result = verify_report(_report((item,), item.message_id), SERVER_KEY, blobs=conv.blobs)
    assert result.reported.verified
    assert result.reported.attachments[0].status is status


def test_attachment_under_the_wrong_key_is_undecryptable() -> None:
    conv = _dm()
    honest = conv.upload(os.urandom(64))
    ref = AttachmentRef(**{**honest.model_dump(), "key": b64encode(os.urandom(32))})
    item = conv.evidence(conv.send("alice", "DALICE01", attachments=(ref,)), "bob")
    result = verify_report(_report((item,), item.message_id), SERVER_KEY, blobs=conv.blobs)
    assert result.reported.verified
    assert result.reported.attachments[0].status is AttachmentStatus.UNDECRYPTABLE


def test_only_verified_messages_have_their_blobs_fetched_or_opened() -> None:
    conv = _dm()
    mine, theirs = conv.upload(os.urandom(64)), conv.upload(os.urandom(64))
    genuine = conv.evidence(conv.send("alice", "DALICE01", "hi", attachments=(mine,)), "bob")
    forged = _alter(conv.evidence(conv.send("alice", "DALICE01", "x", attachments=(theirs,)),
                                  "bob"), "tag", "A" * 43 + "=")
    report = _report((forged, genuine), genuine.message_id)
    assert [r.blob_id for r in attachments_to_fetch(report, SERVER_KEY)] == [mine.blob_id]
    result = verify_report(report, SERVER_KEY, blobs=conv.blobs)
    unverified = next(i for i in result.items if i.item is forged)
    assert unverified.attachments[0].status is AttachmentStatus.NOT_CHECKED
    assert unverified.attachments[0].plaintext is None
    assert result.reported.attachments[0].verified


def test_attachment_references_are_capped_per_message_and_per_report() -> None:
    conv = _dm()
    refs = tuple(conv.upload(b"x") for _ in range(MAX_ATTACHMENTS_PER_MESSAGE + 1))
    with pytest.raises(ValueError, match="at most"):
        conv.send("alice", "DALICE01", attachments=refs)
    full = refs[:MAX_ATTACHMENTS_PER_MESSAGE]
    items = tuple(conv.evidence(conv.send("alice", "DALICE01", attachments=full), "bob")
                  for _ in range(3))
    submitted = {"reporter": "bob", "reported_message_id": items[-1].message_id,
                 "category": "spam", "messages": [i.model_dump(mode="json") for i in items]}
    with pytest.raises(InvalidInput) as caught:
        Report.from_json(json.dumps(submitted))
    assert caught.value.code == "report_invalid"
    assert str(MAX_ATTACHMENTS_PER_REPORT) in caught.value.message


def test_invisible_salamander_blob_cannot_be_reopened_under_another_key() -> None:
    """One ciphertext valid under two keys: revealing the second key breaks the commitment,
    and a blob that is not the committed one fails its hash."""
    key1, key2 = os.urandom(32), os.urandom(32)
    nonce = os.urandom(12)
    blob = nonce + two_key_ciphertext(key1, key2, nonce, b"covey/attachment/v1")
    conv = _dm()
    conv.blobs["blob_salamander000000001"] = blob

    ref = AttachmentRef(blob_id="blob_salamander000000001", key=b64encode(key1),
                        sha256=hashlib.sha256(blob).hexdigest(), size=len(blob) - 28)
    sent = conv.send("alice", "DALICE01", attachments=(ref,))
    honest = conv.evidence(sent, "bob")
    assert verify_report(_report((honest,), honest.message_id), SERVER_KEY,
                         blobs=conv.blobs).all_verified
    swapped_key = _alter(honest, "content.attachments", [
        {**ref.model_dump(mode="json"), "key": b64encode(key2)}])
    with pytest.raises(ReportUnverifiable) as caught:
        verify_report(_report((swapped_key,), honest.message_id), SERVER_KEY,
                      blobs=conv.blobs)
    assert caught.value.details["items"][0]["status"] == "commitment_mismatch"


def test_missing_blob_is_never_verified_but_its_text_is() -> None:
    conv = _dm()
    ref = conv.upload(os.urandom(64))
    item = conv.evidence(conv.send("alice", "DALICE01", "hello", attachments=(ref,)), "bob")
    result = verify_report(_report((item,), item.message_id), SERVER_KEY, blobs={})
    assert result.reported.verified
    assert result.reported.attachments[0].status is AttachmentStatus.MISSING
    assert result.reported.verified_attachments == ()


def test_a_reused_message_id_is_told_apart_by_sender() -> None:
    """In a group, mallory reuses carol's message id: a report names mallory's message
    by its key and is against mallory; an id alone is refused as ambiguous."""
    conv = FrankedConversation(SERVER_KEY, GROUP, ("bob", "carol", "mallory"))
    innocent = conv.send("carol", "DCAROL01", "see you at practice")
    abusive = conv.send("mallory", "DMALLORY", "send me a photo, don't tell anyone",
                        message_id=innocent.content.message_id)
    items = conv.history("bob")
    keyed = Report(reporter="bob", reported_message_id=abusive.content.message_id,
                   reported_sender_user="mallory", reported_conversation_id=GROUP,
                   category=ReportCategory.GROOMING_OR_ENTICEMENT, messages=items)
    result = verify_report(keyed, SERVER_KEY)
    assert result.reported.item.context.sender_user == "mallory"
    assert result.reported.item.content.text == "send me a photo, don't tell anyone"
    assert result.all_verified  # the same id from two senders is no duplicate
    with pytest.raises(InvalidInput) as caught:
        verify_report(_report(items, innocent.content.message_id), SERVER_KEY)
    assert caught.value.code == "reported_message_ambiguous"


def test_group_report_with_several_senders_and_devices_verifies() -> None:
    conv = FrankedConversation(SERVER_KEY, GROUP, ("alice", "bob", "carol", "dave"))
    conv.send("alice", "DALICE01", "welcome to the chess club chat")
    conv.send("dave", "DDAVE001", "hi all")
    conv.send("dave", "DDAVE002", "(from my laptop) anyone want to play online?")
    conv.send("carol", "DCAROL01", "me")
    conv.send("dave", "DDAVE001", "carol, send me a photo of yourself first")
    items = conv.history("carol")
    result = verify_report(_report(items, items[-1].message_id, reporter="carol"), SERVER_KEY)
    assert result.all_verified
    assert {i.item.context.sender_device for i in result.items
            if i.item.context.sender_user == "dave"} == {"DDAVE001", "DDAVE002"}


def test_multi_device_sender_cannot_move_a_message_to_another_device() -> None:
    conv = _dm()
    tablet = conv.send("alice", "DALICE02", "sent from alice's tablet")
    phone = conv.send("alice", "DALICE01", "and this from her phone")
    genuine = conv.history("bob")
    assert verify_report(_report(genuine, phone.content.message_id), SERVER_KEY).all_verified
    moved = _alter(conv.evidence(tablet, "bob"), "context.sender_device", "DALICE01")
    result = verify_report(_report((moved, genuine[1]), phone.content.message_id), SERVER_KEY)
    assert result.reported.verified
    assert {ItemStatus.COMMITMENT_MISMATCH, ItemStatus.TAG_INVALID} <= {
        f.code for f in result.items[0].findings}


def test_group_evidence_issued_to_another_member_is_context_mismatch() -> None:
    conv = FrankedConversation(SERVER_KEY, GROUP, ("alice", "bob", "carol"))
    first = conv.send("alice", "DALICE01", "hello group")
    second = conv.send("alice", "DALICE01", "bob, what is your address?")
    items = (conv.evidence(first, "carol"), conv.evidence(second, "bob"))
    result = verify_report(_report(items, second.content.message_id, reporter="carol"),
                           SERVER_KEY)
    assert result.reported.status is ItemStatus.CONTEXT_MISMATCH
    assert "issued to bob" in result.reported.findings[0].detail


def test_non_participant_cannot_report_a_conversation() -> None:
    conv = _chat()
    items = conv.history("bob")
    with pytest.raises(ReportUnverifiable):
        verify_report(_report(items, items[-1].message_id, reporter="mallory"), SERVER_KEY)


def test_reporters_own_messages_without_a_tag_are_unattested() -> None:
    conv = _chat()
    items = tuple(conv.evidence(m, "bob", tagged=m.sender_user != "bob")
                  for m in conv.messages)
    result = verify_report(_report(items, items[-1].message_id), SERVER_KEY)
    statuses = [i.status for i in result.items]
    assert statuses == [ItemStatus.VERIFIED, ItemStatus.UNATTESTED, ItemStatus.VERIFIED,
                        ItemStatus.UNATTESTED, ItemStatus.VERIFIED]


def test_reporting_your_own_message_is_context_mismatch() -> None:
    conv = _chat()
    items = conv.history("bob")
    result = verify_report(_report(items[:2], items[1].message_id), SERVER_KEY)
    assert result.reported.status is ItemStatus.CONTEXT_MISMATCH


def test_duplicate_message_ids_and_later_messages_are_flagged() -> None:
    conv = _chat()
    items = conv.history("bob")
    later = conv.evidence(conv.send("alice", "DALICE01", "??"), "bob")
    shuffled = (items[1], items[0], items[0], later, items[2])
    result = verify_report(_report(shuffled, items[2].message_id), SERVER_KEY)
    assert not result.submitted_in_order
    assert [i.item.message_id for i in result.items] == [
        items[0].message_id, items[0].message_id, items[1].message_id,
        items[2].message_id, later.message_id]
    assert [i.status for i in result.items] == [
        ItemStatus.VERIFIED, ItemStatus.DUPLICATE, ItemStatus.VERIFIED,
        ItemStatus.VERIFIED, ItemStatus.SPLICED]


def test_report_without_the_reported_message_is_invalid() -> None:
    conv = _chat()
    items = conv.history("bob")
    with pytest.raises(InvalidInput) as caught:
        verify_report(_report(items[:-1], items[-1].message_id), SERVER_KEY)
    assert caught.value.code == "reported_message_missing"


def test_report_model_limits() -> None:
    conv = _dm()
    for i in range(12):
        conv.send("alice", "DALICE01", f"message {i}")
    items = conv.history("bob")
    too_many = _report(items[:11], items[10].message_id).model_dump(mode="json")
    too_many["messages"].append(items[11].model_dump(mode="json"))
    import json

    with pytest.raises(InvalidInput) as caught:
        Report.from_json(json.dumps(too_many))
    assert caught.value.code == "report_invalid"
    with pytest.raises(InvalidInput):
        Report.from_json(b"{not json")


def test_report_survives_a_json_round_trip() -> None:
    conv = _chat()
    items = conv.history("bob")
    report = _report(items, items[-1].message_id, comment="they asked me to keep it secret")
    again = Report.from_json(report.model_dump_json())
    assert verify_report(again, SERVER_KEY).all_verified


def test_replayed_report_has_the_same_fingerprint() -> None:
    conv = _chat()
    items = conv.history("bob")
    first = verify_report(_report(items, items[-1].message_id), SERVER_KEY)
    replay = verify_report(_report(items[-2:], items[-1].message_id,
                                   category=ReportCategory.HARASSMENT, comment="again"),
                           SERVER_KEY)
    assert first.fingerprint == replay.fingerprint
    assert len(first.fingerprint) == 64
    other = verify_report(_report(items[:-1], items[-3].message_id), SERVER_KEY)
    assert other.fingerprint != first.fingerprint


def test_group_members_reporting_the_same_message_get_distinct_fingerprints() -> None:
    conv = FrankedConversation(SERVER_KEY, GROUP, ("alice", "bob", "carol"))
    sent = conv.send("alice", "DALICE01", "spam spam spam")
    by_bob = _report((conv.evidence(sent, "bob"),), sent.content.message_id)
    by_carol = _report((conv.evidence(sent, "carol"),), sent.content.message_id,
                       reporter="carol")
    assert report_fingerprint(by_bob) != report_fingerprint(by_carol)


def test_report_from_client_history_records() -> None:
    conv = _dm()
    for i in range(14):
        conv.send("alice" if i % 2 else "bob", "DALICE01" if i % 2 else "DBOB0001",
                  f"line {i}")
    records = []
    for m in conv.messages:
        evidence = FrankingEvidence(
            content=m.content, commitment=m.commitment,
            tag=FrankingTag.from_b64(conv.tag_for(m, "bob")),
            context=conv.evidence(m, "bob").context.franking(),
            recipient_user="bob", server_ts_ms=m.server_ts_ms)
        records.append(evidence.to_record())
    last = conv.messages[-1]
    reported = MessageKey(conv.conversation_id, last.sender_user, last.content.message_id)
    report = Report.from_history("bob", reported, ReportCategory.SPAM, records)
    assert len(report.messages) == 11
    assert report.messages[-1].key == reported == report.reported_key
    assert verify_report(report, SERVER_KEY).all_verified
    with pytest.raises(InvalidInput):
        Report.from_history("bob", MessageKey(conv.conversation_id, "alice", "X" * 22),
                            ReportCategory.SPAM, records)


def test_category_child_safety_flags() -> None:
    assert ReportCategory.SEXTORTION.is_child_safety
    assert ReportCategory.CHILD_SEXUAL_EXPLOITATION_IMAGERY.is_child_safety
    assert not ReportCategory.SPAM.is_child_safety
