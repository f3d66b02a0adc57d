"""Attachment encryption: a fresh AES-256-GCM key per attachment.

The stored blob is `nonce ‖ ciphertext`. Its SHA-256 and the key go inside the franked
plaintext, so one blob cannot open to two images under two keys (invisible salamanders):
recipients check the hash before decrypting, and a report reveals the committed key.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from covey.errors import CryptoError
from covey.protocol._encoding import b64decode, b64encode
from covey.protocol.content import AttachmentRef

NONCE_BYTES = 12
_AAD = b"covey/attachment/v1"


def encrypt_attachment(plaintext: bytes) -> tuple[bytes, str, str]:
    """Return (blob, base64 key, hex SHA-256 of blob) for a fresh random key."""
    key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_BYTES)
    blob = nonce + AESGCM(key).encrypt(nonce, plaintext, _AAD)
    return blob, b64encode(key), hashlib.sha256(blob).hexdigest()


def decrypt_attachment(blob: bytes, ref: AttachmentRef) -> bytes:
    """Check the blob's hash against the franked reference, then decrypt with its key."""
    digest = hashlib.sha256(blob).hexdigest()
    if not hmac.compare_digest(digest, ref.sha256):
        raise CryptoError(
            "attachment ciphertext does not match its franked hash", code="attachment_hash_mismatch"
        )
    key = b64decode(ref.key, field="attachment key")
    if len(key) != 32 or len(blob) < NONCE_BYTES + 16:
        raise CryptoError("attachment key or blob has the wrong size", code="attachment_invalid")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _AAD)
    except InvalidTag as exc:
        raise CryptoError(
            "attachment does not decrypt under its key", code="attachment_invalid"
        ) from exc
