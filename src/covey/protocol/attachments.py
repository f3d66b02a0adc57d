"""Attachment encryption: a fresh AES-256-GCM key per attachment.

The stored blob is `nonce ‖ ciphertext`. Its SHA-256, its plaintext size and the key go
inside the franked plaintext, so one blob cannot open to two images under two keys
(invisible salamanders): recipients check hash and size before decrypting, and a report
reveals the committed key. `open_attachment` gives the one status every side (client,
relay, report verifier) uses for an attachment that does not match its reference.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from covey.errors import CryptoError, InvalidInput
from covey.protocol._encoding import b64decode, b64encode
from covey.protocol.content import AttachmentRef

NONCE_BYTES = 12
TAG_BYTES = 16
_AAD = b"covey/attachment/v1"


class AttachmentStatus(StrEnum):
    """Whether a stored blob is exactly what a franked reference commits to."""

    VERIFIED = "verified"
    MISSING = "missing"  # no blob under that id
    HASH_MISMATCH = "hash_mismatch"  # the ciphertext's SHA-256 is not the committed one
    SIZE_MISMATCH = "size_mismatch"  # the ciphertext does not hold `size` plaintext bytes
    UNDECRYPTABLE = "undecryptable"  # right bytes, but they do not open under the key
    NOT_CHECKED = "not_checked"  # a report's message that does not verify: blob not read
    # The relay withheld the blob: it matched a known harmful image (docs/detection.md).
    WITHHELD = "withheld"


_STATUS_OF_CODE = {
    "attachment_hash_mismatch": AttachmentStatus.HASH_MISMATCH,
    "attachment_size_mismatch": AttachmentStatus.SIZE_MISMATCH,
}


@dataclass(frozen=True)
class OpenedAttachment:
    """The outcome of checking one blob against its reference: the plaintext only when
    `status` is verified, else the reason in `detail`."""

    ref: AttachmentRef
    status: AttachmentStatus
    detail: str = ""
    plaintext: bytes | None = field(default=None, repr=False)

    @property
    def verified(self) -> bool:
        return self.status is AttachmentStatus.VERIFIED


def ciphertext_size(plaintext_size: int) -> int:
    """The stored blob's length for a plaintext of `plaintext_size` bytes."""
    return plaintext_size + NONCE_BYTES + TAG_BYTES


def stored_blob_matches(ref: AttachmentRef, sha256: str | None,
                        size: int | None) -> AttachmentStatus:
    """Check a reference against the relay's blob table row (None: no such blob) without
    reading the blob: the committed hash and the ciphertext length for `ref.size`."""
    if sha256 is None or size is None:
        return AttachmentStatus.MISSING
    if not hmac.compare_digest(sha256, ref.sha256):
        return AttachmentStatus.HASH_MISMATCH
    if size != ciphertext_size(ref.size):
        return AttachmentStatus.SIZE_MISMATCH
    return AttachmentStatus.VERIFIED


def open_attachment(blob: bytes | None, ref: AttachmentRef) -> OpenedAttachment:
    """`decrypt_attachment` as a status instead of an exception (None: blob missing)."""
    if blob is None:
        return OpenedAttachment(ref, AttachmentStatus.MISSING,
                                "the stored ciphertext is not available")
    try:
        plaintext = decrypt_attachment(blob, ref)
    except CryptoError as exc:
        status = _STATUS_OF_CODE.get(exc.code, AttachmentStatus.UNDECRYPTABLE)
        return OpenedAttachment(ref, status, exc.message)
    return OpenedAttachment(ref, AttachmentStatus.VERIFIED, "", plaintext)


def encrypt_attachment(plaintext: bytes) -> tuple[bytes, str, str]:
    """Return (blob, base64 key, hex SHA-256 of blob) for a fresh random key."""
    key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_BYTES)
    blob = nonce + AESGCM(key).encrypt(nonce, plaintext, _AAD)
    return blob, b64encode(key), hashlib.sha256(blob).hexdigest()


def decrypt_attachment(blob: bytes, ref: AttachmentRef) -> bytes:
    """Check the blob's hash and size against the franked reference, then decrypt with
    its key. A reference whose `size` is not the plaintext's is refused: what a client
    shows must be what a report of it verifies."""
    digest = hashlib.sha256(blob).hexdigest()
    if not hmac.compare_digest(digest, ref.sha256):
        raise CryptoError(
            "attachment ciphertext does not match its franked hash", code="attachment_hash_mismatch"
        )
    if len(blob) != ciphertext_size(ref.size):
        raise CryptoError(
            f"attachment ciphertext of {len(blob)} bytes cannot hold the franked size of "
            f"{ref.size} bytes", code="attachment_size_mismatch")
    try:
        key = b64decode(ref.key, field="attachment key")
    except InvalidInput as exc:
        raise CryptoError("attachment key is malformed", code="attachment_invalid") from exc
    if len(key) != 32 or len(blob) < NONCE_BYTES + TAG_BYTES:
        raise CryptoError("attachment key or blob has the wrong size", code="attachment_invalid")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _AAD)
    except InvalidTag as exc:
        raise CryptoError(
            "attachment does not decrypt under its key", code="attachment_invalid"
        ) from exc
