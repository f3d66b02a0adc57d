"""Distinct small types for device keys and signatures, and a redacted pickle key.

Public keys are plain values (shown in repr); the pickle key is a secret: redacted
repr and constant-time equality only.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Self

import vodozemac

from covey.errors import CryptoError, InvalidInput
from covey.protocol._encoding import b64decode


@dataclass(frozen=True)
class _PublicKey:
    """A 32-byte public key kept as its unpadded base64 text (the wire form)."""

    b64: str

    def __post_init__(self) -> None:
        if len(b64decode(self.b64, field=type(self).__name__)) != 32:
            raise InvalidInput(f"{type(self).__name__} must be 32 bytes")

    def __str__(self) -> str:
        return self.b64


class IdentityKey(_PublicKey):
    """A device's long-term Curve25519 key (Olm identity)."""

    def to_vodozemac(self) -> vodozemac.Curve25519PublicKey:
        return vodozemac.Curve25519PublicKey.from_base64(self.b64)


class SigningKey(_PublicKey):
    """A device's Ed25519 public key: it signs the device's statements."""

    def verify(self, message: bytes, signature: Signature) -> bool:
        try:
            key = vodozemac.Ed25519PublicKey.from_base64(self.b64)
            key.verify_signature(message, vodozemac.Ed25519Signature.from_base64(signature.b64))
        except (vodozemac.SignatureException, vodozemac.KeyException,
                vodozemac.DecodeException, ValueError):
            return False
        return True


class OneTimeKey(_PublicKey):
    """A Curve25519 one-time (or fallback) key another device claims to start a session."""

    def to_vodozemac(self) -> vodozemac.Curve25519PublicKey:
        return vodozemac.Curve25519PublicKey.from_base64(self.b64)


@dataclass(frozen=True)
class Signature:
    """An Ed25519 signature (64 bytes, unpadded base64)."""

    b64: str

    def __post_init__(self) -> None:
        if len(b64decode(self.b64, field="signature")) != 64:
            raise InvalidInput("an Ed25519 signature must be 64 bytes")


@dataclass(frozen=True, eq=False)
class PickleKey:
    """The 32-byte key that encrypts vodozemac pickles. Secret: never shown, never `==`."""

    raw: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != 32:
            raise CryptoError("a pickle key must be exactly 32 bytes")

    @classmethod
    def generate(cls) -> Self:
        return cls(secrets.token_bytes(32))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PickleKey):
            return NotImplemented
        return hmac.compare_digest(self.raw, other.raw)

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return "PickleKey(<redacted>)"

    __str__ = __repr__
