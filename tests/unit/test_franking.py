"""Attacks on franking and attachments that the recipient and the platform must catch."""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from covey.errors import CryptoError, FrankingError, InvalidInput
from covey.protocol import (
    AttachmentRef,
    FrankingCommitment,
    FrankingContext,
    FrankingKey,
    FrankingTag,
    MessageContent,
    ServerFrankingKey,
    TagContext,
    b64encode,
    check_opens,
    commit,
    decrypt_attachment,
    encrypt_attachment,
    opens,
    pad,
    server_tag,
    tag_is_valid,
    unpad,
)
from covey.protocol.attachments import NONCE_BYTES
from tests.unit._salamander import two_key_ciphertext

CONTEXT = FrankingContext("dm:alice:bob", "alice", "DALICE01", ("alice", "bob"))
TAG_CONTEXT = TagContext(
    "alice", "DALICE01", "bob", "dm:alice:bob", 1_700_000_000_000, "MSGID0000000000000001"
)


def _content(
    text: str = "see you at 5",
    fk: FrankingKey | None = None,
    attachments: tuple[AttachmentRef, ...] = (),
) -> MessageContent:
    return MessageContent(
        kind="attachment" if attachments else "text",
        message_id="MSGID0000000000000001",
        conversation_id="dm:alice:bob",
        sent_at_ms=1_700_000_000_000,
        text=text,
        attachments=attachments,
        franking_key=(fk or FrankingKey.generate()).to_b64(),
    )


def test_commitment_opens_for_the_true_message() -> None:
    content = _content()
    c = commit(content.fk(), content.committed_part(), CONTEXT)
    check_opens(c, content.fk(), content.committed_part(), CONTEXT)


def test_altered_plaintext_does_not_open() -> None:
    content = _content("meet me at the park")
    c = commit(content.fk(), content.committed_part(), CONTEXT)
    altered = _content("meet me at the library", fk=content.fk())
    with pytest.raises(FrankingError):
        check_opens(c, altered.fk(), altered.committed_part(), CONTEXT)


def test_reused_franking_key_with_different_text_does_not_open() -> None:
    fk = FrankingKey.generate()
    first = _content("first message", fk=fk)
    c = commit(fk, first.committed_part(), CONTEXT)
    second = _content("second message", fk=fk)
    assert not opens(c, fk, second.committed_part(), CONTEXT)


def test_wrong_franking_key_does_not_open() -> None:
    content = _content()
    c = commit(content.fk(), content.committed_part(), CONTEXT)
    assert not opens(c, FrankingKey.generate(), content.committed_part(), CONTEXT)


@pytest.mark.parametrize(
    "spliced",
    [
        FrankingContext("dm:alice:carol", "alice", "DALICE01", ("alice", "carol")),
        FrankingContext("dm:alice:bob", "bob", "DALICE01", ("alice", "bob")),
        FrankingContext("dm:alice:bob", "alice", "DALICE02", ("alice", "bob")),
        FrankingContext("dm:alice:bob", "alice", "DALICE01", ("alice", "bob", "carol")),
    ],
    ids=["other-conversation", "other-sender", "other-device", "other-participants"],
)
def test_evidence_spliced_into_another_context_does_not_open(spliced: FrankingContext) -> None:
    content = _content()
    c = commit(content.fk(), content.committed_part(), CONTEXT)
    assert not opens(c, content.fk(), content.committed_part(), spliced)


def test_participant_order_does_not_matter() -> None:
    content = _content()
    c = commit(content.fk(), content.committed_part(), CONTEXT)
    reordered = FrankingContext("dm:alice:bob", "alice", "DALICE01", ("bob", "alice", "bob"))
    assert opens(c, content.fk(), content.committed_part(), reordered)


@pytest.mark.slow
@given(original=st.text(max_size=200), altered=st.text(max_size=200))
def test_any_change_to_the_text_breaks_the_commitment(original: str, altered: str) -> None:
    fk = FrankingKey.generate()
    c = commit(fk, _content(original, fk).committed_part(), CONTEXT)
    assert opens(c, fk, _content(altered, fk).committed_part(), CONTEXT) == (original == altered)


def test_server_tag_verifies_and_forgeries_fail() -> None:
    key = ServerFrankingKey.generate()
    c = FrankingCommitment.generate()
    tag = server_tag(key, c, TAG_CONTEXT)
    assert tag_is_valid(key, tag, c, TAG_CONTEXT)
    assert not tag_is_valid(key, FrankingTag.generate(), c, TAG_CONTEXT)
    assert not tag_is_valid(ServerFrankingKey.generate(), tag, c, TAG_CONTEXT)
    assert not tag_is_valid(key, tag, FrankingCommitment.generate(), TAG_CONTEXT)
    for field, value in [
        ("recipient_user", "carol"),
        ("server_ts_ms", 1),
        ("message_id", "MSGID0000000000000002"),
        ("sender_user", "mallory"),
        ("conversation_id", "dm:alice:carol"),
        ("sender_device", "DEV2"),
    ]:
        other = TagContext(**{**TAG_CONTEXT.to_json(), field: value})
        assert not tag_is_valid(key, tag, c, other), field


def test_secrets_are_redacted_and_compared_in_constant_time() -> None:
    fk = FrankingKey(b"\x01" * 32)
    assert "01" not in repr(fk) and "AQEB" not in repr(fk) and "redacted" in repr(fk)
    assert fk == FrankingKey(b"\x01" * 32)
    assert fk != FrankingKey(b"\x02" * 32)
    with pytest.raises(InvalidInput):
        FrankingKey(b"short")


def test_attachment_round_trip_and_swapped_ciphertext_detected() -> None:
    blob, key, digest = encrypt_attachment(b"picture of a cat")
    ref = AttachmentRef(blob_id="blob_" + "a" * 24, key=key, sha256=digest, size=16)
    assert decrypt_attachment(blob, ref) == b"picture of a cat"
    other_blob, _, _ = encrypt_attachment(b"something else entirely")
    with pytest.raises(CryptoError) as err:
        decrypt_attachment(other_blob, ref)
    assert err.value.code == "attachment_hash_mismatch"


def test_invisible_salamander_cannot_open_the_commitment_under_the_second_key() -> None:
    """One ciphertext, two keys, two different plaintexts — GCM accepts both.

    The attacker commits to key 1 (the harmless image the moderator would see) and hopes
    the recipient decrypts with key 2. Covey's content commits to the key and the hash of
    the ciphertext, so a message naming key 2 does not open the commitment made for key 1,
    and a message committing to key 2 reveals key 2 when reported.
    """
    aad = b"covey/attachment/v1"
    key1, key2, nonce = os.urandom(32), os.urandom(32), os.urandom(NONCE_BYTES)
    blob = nonce + two_key_ciphertext(key1, key2, nonce, aad)
    plain1 = AESGCM(key1).decrypt(nonce, blob[NONCE_BYTES:], aad)
    plain2 = AESGCM(key2).decrypt(nonce, blob[NONCE_BYTES:], aad)
    assert plain1 != plain2  # the attack is real against bare AES-GCM

    digest = hashlib.sha256(blob).hexdigest()
    ref1 = AttachmentRef(
        blob_id="blob_" + "s" * 24, key=b64encode(key1), sha256=digest, size=len(plain1)
    )
    ref2 = ref1.model_copy(update={"key": b64encode(key2)})
    fk = FrankingKey.generate()
    committed = _content("", fk, (ref1,))
    c = commit(fk, committed.committed_part(), CONTEXT)

    # The recipient decrypts exactly what was committed ...
    assert decrypt_attachment(blob, committed.attachments[0]) == plain1
    # ... and a delivery that swaps in the second key no longer opens the commitment.
    swapped = _content("", fk, (ref2,))
    with pytest.raises(FrankingError):
        check_opens(c, fk, swapped.committed_part(), CONTEXT)


@pytest.mark.parametrize("length", [0, 1, 254, 255, 256, 1000, 70_000])
def test_padding_hides_exact_length(length: int) -> None:
    data = os.urandom(length)
    padded = pad(data)
    assert len(padded) >= 256 and len(padded) & (len(padded) - 1) == 0
    assert unpad(padded) == data


def test_padding_buckets_group_lengths() -> None:
    assert len({len(pad(b"x" * n)) for n in range(0, 255)}) == 1


@pytest.mark.parametrize("bad", [b"", b"\x00" * 256, b"abc\x80" + b"\x00" * 508, b"\x01" * 256])
def test_malformed_padding_rejected(bad: bytes) -> None:
    with pytest.raises(InvalidInput):
        unpad(bad)


def test_content_rejects_oversized_text_and_unknown_fields() -> None:
    with pytest.raises(ValueError):
        _content("x" * (64 * 1024 + 1))
    with pytest.raises(InvalidInput):
        MessageContent.from_bytes(b'{"kind": "text", "surprise": 1}')
