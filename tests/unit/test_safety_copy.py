"""Safety copies: seal, open, and every way a sender or relay might try to break them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke

from covey.errors import CoveyError
from covey.protocol import (
    FrankingContext,
    FrankingKey,
    MessageContent,
    b64decode,
    b64encode,
    commit,
)
from covey.protocol.content import bucket_size, pad
from covey.protocol.safety_copy import (
    SafetyCopy,
    SafetyCopyContext,
    SafetyCopyError,
    SafetyServicePrivateKey,
    SafetyServicePublicKey,
    hpke_info,
    open_safety_copy,
    seal_safety_copy,
)

SERVICE = SafetyServicePrivateKey.generate()
PUBLIC = SERVICE.public_key()
MID = "MSGID0000000000000001"
CONV = "dm:adult:child"


def _content(text: str = "see you at the library", message_id: str = MID,
             conversation_id: str = CONV) -> MessageContent:
    return MessageContent(kind="text", message_id=message_id, conversation_id=conversation_id,
                          sent_at_ms=1_700_000_000_000, text=text,
                          franking_key=FrankingKey.generate().to_b64())


def _context(content: MessageContent, *, sender_device: str = "DADULT01",
             participants: tuple[str, ...] = ("adult", "child")) -> SafetyCopyContext:
    """The envelope's context, with the commitment the sender computed for `content`."""
    franking = FrankingContext(content.conversation_id, "adult", sender_device, participants)
    commitment = commit(content.fk(), content.committed_part(), franking)
    return SafetyCopyContext(content.message_id, content.conversation_id, "adult",
                             sender_device, participants, commitment)


def _code(exc: pytest.ExceptionInfo[SafetyCopyError]) -> str:
    return exc.value.code


def test_round_trip_returns_the_exact_content_with_its_franking_key() -> None:
    content = _content()
    context = _context(content)
    copy = seal_safety_copy(content, context, PUBLIC)
    opened = open_safety_copy(copy, context, SERVICE)
    assert opened == content
    assert opened.franking_key == content.franking_key
    assert copy.key_id == PUBLIC.key_id()


def test_copy_is_accepted_as_json_from_the_wire() -> None:
    content = _content()
    context = _context(content)
    wire = seal_safety_copy(content, context, PUBLIC).model_dump(mode="json")
    assert open_safety_copy(wire, context, [SafetyServicePrivateKey.generate(), SERVICE]) \
        == content


def test_sealed_bytes_are_rfc9180_enc_then_padded_ciphertext() -> None:
    content = _content()
    context = _context(content)
    sealed = b64decode(seal_safety_copy(content, context, PUBLIC).sealed)
    assert len(sealed) == 32 + bucket_size(len(content.to_bytes())) + 16
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    assert suite.decrypt(sealed, SERVICE._x25519(), info=hpke_info(PUBLIC, context)) \
        == pad(content.to_bytes())


# (plaintext bytes of the content, sealed bytes): enc 32 + bucket + GCM tag 16.
SEALED_LENGTH_VECTORS = [(224, 304), (255, 304), (256, 560), (511, 560), (512, 1072),
                         (1000, 1072), (4096, 8240), (65_000, 65_584), (65_536, 131_120)]


@pytest.mark.parametrize(("plain", "sealed"), SEALED_LENGTH_VECTORS)
def test_sealed_length_is_the_bucket_not_the_message(plain: int, sealed: int) -> None:
    base = len(_content(text="").to_bytes())
    content = _content(text="x" * (plain - base))
    assert len(content.to_bytes()) == plain
    context = _context(content)
    copy = seal_safety_copy(content, context, PUBLIC)
    assert len(b64decode(copy.sealed)) == sealed
    assert open_safety_copy(copy, context, SERVICE) == content


def test_messages_of_different_lengths_in_one_bucket_seal_to_one_size() -> None:
    sizes = set()
    for text in ("", "hi", "see you at four", "x" * 31):
        content = _content(text=text)
        sizes.add(len(b64decode(seal_safety_copy(content, _context(content), PUBLIC).sealed)))
    assert sizes == {32 + 256 + 16}


def test_an_unpadded_copy_is_invalid() -> None:
    content = _content()
    context = _context(content)
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    sealed = suite.encrypt(content.to_bytes(), PUBLIC._x25519(), info=hpke_info(PUBLIC, context))
    with pytest.raises(SafetyCopyError) as caught:
        open_safety_copy(SafetyCopy(key_id=PUBLIC.key_id(), sealed=b64encode(sealed)),
                         context, SERVICE)
    assert _code(caught) == "safety_copy_invalid"


def test_two_seals_of_the_same_content_differ() -> None:
    content = _content()
    context = _context(content)
    first = seal_safety_copy(content, context, PUBLIC)
    second = seal_safety_copy(content, context, PUBLIC)
    assert first.sealed != second.sealed


def test_missing_copy_is_refused() -> None:
    content = _content()
    with pytest.raises(SafetyCopyError) as exc:
        open_safety_copy(None, _context(content), SERVICE)
    assert _code(exc) == "safety_copy_missing"
    assert isinstance(exc.value, CoveyError) and 400 <= exc.value.status < 500


@pytest.mark.parametrize("position", [0, 31, 32, 40, -17, -1])
def test_tampered_ciphertext_is_invalid(position: int) -> None:
    content = _content()
    context = _context(content)
    copy = seal_safety_copy(content, context, PUBLIC)
    sealed = bytearray(b64decode(copy.sealed))
    sealed[position] ^= 0x01
    tampered = copy.model_copy(update={"sealed": b64encode(bytes(sealed))})
    with pytest.raises(SafetyCopyError) as exc:
        open_safety_copy(tampered, context, SERVICE)
    assert _code(exc) == "safety_copy_invalid"


@pytest.mark.parametrize("sealed", [b"", b"x" * 47, b"\x00" * 48])
def test_truncated_or_empty_copy_is_invalid(sealed: bytes) -> None:
    content = _content()
    copy = SafetyCopy(key_id=PUBLIC.key_id(), sealed=b64encode(sealed))
    with pytest.raises(SafetyCopyError) as exc:
        open_safety_copy(copy, _context(content), SERVICE)
    assert _code(exc) == "safety_copy_invalid"


@pytest.mark.parametrize("wire", [
    {"v": 1, "key_id": "nothex", "sealed": "AAAA"},
    {"v": 2, "key_id": "0" * 32, "sealed": "AAAA"},
    {"v": 1, "key_id": "0" * 32, "sealed": "not base64!"},
    {"v": 1, "key_id": "0" * 32},
    {"v": 1, "key_id": "0" * 32, "sealed": "AAAA", "extra": 1},
])
def test_malformed_wire_copy_is_invalid(wire: dict[str, object]) -> None:
    content = _content()
    with pytest.raises(SafetyCopyError) as exc:
        open_safety_copy(wire, _context(content), SERVICE)
    assert _code(exc) == "safety_copy_invalid"


def test_wrong_recipient_key_is_invalid() -> None:
    content = _content()
    context = _context(content)
    other = SafetyServicePrivateKey.generate()
    copy = seal_safety_copy(content, context, other.public_key())
    with pytest.raises(SafetyCopyError) as exc:
        open_safety_copy(copy, context, SERVICE)
    assert _code(exc) == "safety_copy_invalid"


def test_key_id_relabelled_to_the_service_key_still_fails() -> None:
    content = _content()
    context = _context(content)
    other = SafetyServicePrivateKey.generate()
    copy = seal_safety_copy(content, context, other.public_key())
    relabelled = copy.model_copy(update={"key_id": PUBLIC.key_id()})
    with pytest.raises(SafetyCopyError) as exc:
        open_safety_copy(relabelled, context, SERVICE)
    assert _code(exc) == "safety_copy_invalid"


def test_copy_of_a_different_plaintext_is_a_mismatch() -> None:
    """The sender franks one message for the child and seals another for the server."""
    shown_to_child = _content("let's move this to another app")
    context = _context(shown_to_child)
    shown_to_server = _content("see you at school")
    copy = seal_safety_copy_unchecked(shown_to_server, context)
    with pytest.raises(SafetyCopyError) as exc:
        open_safety_copy(copy, context, SERVICE)
    assert _code(exc) == "safety_copy_mismatch"


def test_same_text_with_another_franking_key_is_a_mismatch() -> None:
    content = _content()
    context = _context(content)
    forged = content.model_copy(update={"franking_key": FrankingKey.generate().to_b64()})
    with pytest.raises(SafetyCopyError) as exc:
        open_safety_copy(seal_safety_copy_unchecked(forged, context), context, SERVICE)
    assert _code(exc) == "safety_copy_mismatch"


def test_content_naming_another_message_id_is_a_mismatch() -> None:
    content = _content()
    context = _context(content)
    other = content.model_copy(update={"message_id": "MSGID0000000000000002"})
    with pytest.raises(SafetyCopyError) as exc:
        open_safety_copy(seal_safety_copy_unchecked(other, context), context, SERVICE)
    assert _code(exc) == "safety_copy_mismatch"


def test_content_naming_another_conversation_is_a_mismatch() -> None:
    content = _content()
    context = _context(content)
    other = content.model_copy(update={"conversation_id": "dm:adult:other"})
    with pytest.raises(SafetyCopyError) as exc:
        open_safety_copy(seal_safety_copy_unchecked(other, context), context, SERVICE)
    assert _code(exc) == "safety_copy_mismatch"


@pytest.mark.parametrize("field,value", [
    ("message_id", "MSGID0000000000000002"),
    ("conversation_id", "dm:adult:other"),
    ("sender_device", "DADULT02"),
    ("sender_user", "mallory"),
    ("participants", ("adult", "child", "mallory")),
])
def test_copy_bound_to_another_context_does_not_open(field: str, value: Any) -> None:
    content = _content()
    context = _context(content)
    copy = seal_safety_copy(content, context, PUBLIC)
    elsewhere = dataclasses.replace(context, **{field: value})
    with pytest.raises(SafetyCopyError) as exc:
        open_safety_copy(copy, elsewhere, SERVICE)
    assert _code(exc) == "safety_copy_invalid"


def test_replay_onto_another_envelope_is_refused() -> None:
    """A relay or sender reuses an innocent message's copy for a second envelope."""
    innocent = _content("see you at school")
    innocent_context = _context(innocent)
    copy = seal_safety_copy(innocent, innocent_context, PUBLIC)
    harmful = _content("don't tell your parents", message_id="MSGID0000000000000002")
    with pytest.raises(SafetyCopyError) as exc:
        open_safety_copy(copy, _context(harmful), SERVICE)
    assert _code(exc) == "safety_copy_invalid"
    # Same message id, new commitment (the sender re-franked other content): still refused.
    same_id = _content("don't tell your parents")
    with pytest.raises(SafetyCopyError) as exc:
        open_safety_copy(copy, _context(same_id), SERVICE)
    assert _code(exc) == "safety_copy_invalid"


def test_sealing_refuses_content_that_does_not_open_the_commitment() -> None:
    content = _content()
    context = _context(_content("something else"))
    with pytest.raises(SafetyCopyError) as exc:
        seal_safety_copy(content, context, PUBLIC)
    assert _code(exc) == "safety_copy_mismatch"


def test_keys_have_redacted_repr_and_constant_time_equality() -> None:
    assert "redacted" in repr(SERVICE)
    assert SERVICE.to_b64() not in repr(SERVICE) and SERVICE.to_b64() not in str(SERVICE)
    assert PUBLIC.to_b64() in repr(PUBLIC)
    assert SafetyServicePrivateKey(SERVICE.raw) == SERVICE
    assert SafetyServicePublicKey.from_b64(PUBLIC.to_b64()) == PUBLIC
    assert SERVICE.public_key() == PUBLIC
    assert SERVICE.key_id() == PUBLIC.key_id() and len(PUBLIC.key_id()) == 32


def seal_safety_copy_unchecked(content: MessageContent,
                               context: SafetyCopyContext) -> SafetyCopy:
    """A malicious client: seal without the sender-side consistency check."""
    from covey.protocol.safety_copy import _SUITE

    sealed = _SUITE.encrypt(pad(content.to_bytes()), PUBLIC._x25519(),
                            info=hpke_info(PUBLIC, context))
    return SafetyCopy(key_id=PUBLIC.key_id(), sealed=b64encode(sealed))
