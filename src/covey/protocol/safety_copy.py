"""Safety copies: a message's plaintext (with its franking key) sealed to the safety service.

RFC 9180 HPKE, base mode, single shot, from `cryptography`:
DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. The HPKE `info` binds the
recipient key and the message's context (message id, conversation, sender device,
participants, franking commitment), so a copy opens only for the envelope it was made
for. The plaintext is padded to the same power-of-two buckets as envelope plaintexts
(`content.pad`), so the stored copy's size hides the message's exact length. The server
then checks the opened content against the envelope's commitment, so it scans exactly
what the recipients will read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from covey.errors import CryptoError, InvalidInput
from covey.protocol._encoding import b64decode, b64encode, labelled
from covey.protocol.content import MessageContent, pad, unpad
from covey.protocol.franking import FrankingContext, opens
from covey.protocol.secrets import FrankingCommitment, _Bytes32
from covey.protocol.wire import MAX_SAFETY_COPY_BYTES, SafetyCopy

SUITE_NAME = "DHKEM-X25519-HKDF-SHA256/HKDF-SHA256/AES-256-GCM"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
ENC_BYTES = 32  # X25519 encapsulated key
TAG_BYTES = 16  # AES-GCM tag
MAX_SEALED_BYTES = MAX_SAFETY_COPY_BYTES


class SafetyCopyError(CryptoError):
    """A safety copy is missing, does not open, or does not match its envelope."""

    code = "safety_copy_invalid"


def _missing(message: str) -> SafetyCopyError:
    return SafetyCopyError(message, code="safety_copy_missing")


def _invalid(message: str) -> SafetyCopyError:
    return SafetyCopyError(message, code="safety_copy_invalid")


def _mismatch(message: str) -> SafetyCopyError:
    return SafetyCopyError(message, code="safety_copy_mismatch")


# --- keys ----------------------------------------------------------------------------


class SafetyServicePublicKey(_Bytes32):
    """The safety service's X25519 public key; clients seal copies to it."""

    _secret = False

    def key_id(self) -> str:
        """Short stable name for the key, so the server can rotate keys."""
        digest = hashlib.sha256(labelled("safety-key", {"x25519": self.to_b64()})).digest()
        return digest[:16].hex()

    def _x25519(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.raw)


class SafetyServicePrivateKey(_Bytes32):
    """The safety service's X25519 private key. Lives only on the server, in its key file."""

    def public_key(self) -> SafetyServicePublicKey:
        public = self._x25519().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return SafetyServicePublicKey(public)

    def key_id(self) -> str:
        return self.public_key().key_id()

    def _x25519(self) -> X25519PrivateKey:
        return X25519PrivateKey.from_private_bytes(self.raw)


# --- context and wire form ------------------------------------------------------------


@dataclass(frozen=True)
class SafetyCopyContext:
    """The envelope a copy belongs to; everything here is bound into the HPKE info."""

    message_id: str
    conversation_id: str
    sender_user: str
    sender_device: str
    participants: tuple[str, ...]
    commitment: FrankingCommitment

    def franking_context(self) -> FrankingContext:
        return FrankingContext(self.conversation_id, self.sender_user, self.sender_device,
                               self.participants)

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            **self.franking_context().to_json(),
            "commitment": self.commitment.to_b64(),
        }


def hpke_info(public_key: SafetyServicePublicKey, context: SafetyCopyContext) -> bytes:
    """The exact HPKE info: `covey/safety-copy/v1 NUL JCS({suite, recipient_key, key_id,
    message_id, conversation_id, sender_user, sender_device, participants, commitment})`.

    The ephemeral key is bound by the KEM itself (RFC 9180 §4.1: kem_context = enc ‖ pkR).
    """
    return labelled(
        "safety-copy",
        {
            "suite": SUITE_NAME,
            "recipient_key": public_key.to_b64(),
            "key_id": public_key.key_id(),
            **context.to_json(),
        },
    )


# --- seal and open --------------------------------------------------------------------


def seal_safety_copy(content: MessageContent, context: SafetyCopyContext,
                     public_key: SafetyServicePublicKey) -> SafetyCopy:
    """Client side: seal `content` (with its franking key) for the safety service.

    Refuses content that does not belong to `context`, so a client bug fails here and
    not as a server refusal.
    """
    _check_content(content, context)
    info = hpke_info(public_key, context)
    # Padded to the envelopes' buckets, so a stored copy's size does not give away the
    # exact length of the message.
    sealed = _SUITE.encrypt(pad(content.to_bytes()), public_key._x25519(), info=info)
    return SafetyCopy(key_id=public_key.key_id(), sealed=b64encode(sealed))


def open_safety_copy(copy: SafetyCopy | dict[str, Any] | None, context: SafetyCopyContext,
                     keys: SafetyServicePrivateKey | Iterable[SafetyServicePrivateKey],
                     ) -> MessageContent:
    """Server side: open the copy and check it against the envelope it came with.

    Raises `SafetyCopyError` with code `safety_copy_missing` (no copy),
    `safety_copy_invalid` (unknown key, malformed, does not decrypt for this envelope) or
    `safety_copy_mismatch` (decrypts, but is not the content the commitment binds).
    """
    if copy is None:
        raise _missing("this conversation is safeguarded: the message needs a safety copy")
    if not isinstance(copy, SafetyCopy):
        try:
            copy = SafetyCopy.model_validate(copy)
        except ValidationError as exc:
            raise _invalid(f"malformed safety copy: {exc.errors()[0]['msg']}") from exc
    ring = [keys] if isinstance(keys, SafetyServicePrivateKey) else list(keys)
    private = next((key for key in ring if key.key_id() == copy.key_id), None)
    if private is None:
        raise _invalid("the safety copy is sealed to a key the safety service does not hold")
    try:
        sealed = b64decode(copy.sealed, field="safety copy")
    except InvalidInput as exc:
        raise _invalid("the safety copy is not valid base64") from exc
    if not ENC_BYTES + TAG_BYTES <= len(sealed) <= MAX_SEALED_BYTES:
        raise _invalid("the safety copy has an impossible size")
    info = hpke_info(private.public_key(), context)
    try:
        plaintext = _SUITE.decrypt(sealed, private._x25519(), info=info)
    except InvalidTag as exc:
        raise _invalid("the safety copy does not open for this message") from exc
    try:
        content = MessageContent.from_bytes(unpad(plaintext))
    except InvalidInput as exc:
        raise _invalid(f"the safety copy holds malformed content: {exc.message}") from exc
    _check_content(content, context)
    return content


def _check_content(content: MessageContent, context: SafetyCopyContext) -> None:
    if content.message_id != context.message_id:
        raise _mismatch("the safety copy is for another message id")
    if content.conversation_id != context.conversation_id:
        raise _mismatch("the safety copy is for another conversation")
    try:
        fk = content.fk()
    except InvalidInput as exc:
        raise _mismatch("the safety copy's franking key is malformed") from exc
    if not opens(context.commitment, fk, content.committed_part(),
                 context.franking_context()):
        raise _mismatch("the safety copy does not open the message's franking commitment")
