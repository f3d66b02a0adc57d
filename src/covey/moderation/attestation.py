"""The platform's Ed25519 attestation key: what signs evidence bundles for law
enforcement, and how its public half is loaded and named offline."""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from covey.errors import InvalidInput


def attestation_key_id(public_key: Ed25519PublicKey) -> str:
    """A short stable name for a public key: the first 16 bytes of SHA-256, in hex."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The public key as PEM (SubjectPublicKeyInfo), the file handed to investigators."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """Load an Ed25519 public key from PEM, or from base64 / hex of the raw 32 bytes."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text)
        except ValueError as exc:
            raise InvalidInput("the public key PEM is malformed") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidInput("the public key is not an Ed25519 key")
        return key
    raw = _decode_raw(text)
    if raw is None or len(raw) != 32:
        raise InvalidInput("the public key must be PEM, or 32 raw bytes as base64 or hex")
    return Ed25519PublicKey.from_public_bytes(raw)


def _decode_raw(text: bytes) -> bytes | None:
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            pass
    try:
        return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
