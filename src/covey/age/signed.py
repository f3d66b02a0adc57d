"""Operator-signed trust registries: the registry's exact bytes, signed with Ed25519.

A relay only trusts a registry its operator signed with the key pinned in its settings
(`trust_registry_key`). The signature covers the payload bytes as they travel (never a
re-encoding), and the payload carries when it was signed, so a relay can tell a registry
that stopped being refreshed from a current one (see docs/age-assurance.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from covey.age._files import PUBLIC_MODE, write_bytes
from covey.errors import CoveyError

FORMAT = "covey-trust-registry/1"
# A signed file is the payload (credential definitions: tens of KB per issuer) in base64.
MAX_SIGNED_BYTES = 32 * 1024 * 1024


class RegistryUnsigned(CoveyError):
    """The trust registry is not signed, or not by the operator key pinned in the settings."""

    code = "trust_registry_unsigned"
    status = 400


@dataclass(frozen=True)
class SignedRegistry:
    """A registry whose signature checked: its document and when the operator signed it."""

    issuers: list[dict[str, Any]]
    signed_at_ms: int


@dataclass(frozen=True, eq=False)
class OperatorKey:
    """The operator's Ed25519 signing key for trust registries. Redacted `repr`."""

    _key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> OperatorKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes) -> OperatorKey:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise CoveyError("not an operator key (PEM PKCS#8 Ed25519)",
                             code="operator_key_invalid") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise CoveyError("the operator key must be Ed25519", code="operator_key_invalid")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())

    @property
    def public_key(self) -> str:
        """What the relay pins: base64 of the 32-byte raw public key."""
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    def sign(self, issuers: list[dict[str, Any]], signed_at_ms: int) -> bytes:
        """The signed registry file's bytes."""
        payload = json.dumps({"format": FORMAT, "signed_at_ms": signed_at_ms,
                              "issuers": issuers}, separators=(",", ":")).encode()
        return json.dumps({
            "format": FORMAT,
            "payload": base64.b64encode(payload).decode("ascii"),
            "signature": base64.b64encode(self._key.sign(payload)).decode("ascii"),
        }, indent=1).encode()

    @property
    def verify_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def write(self, path: Path, issuers: list[dict[str, Any]],
              signed_at_ms: int | None = None) -> None:
        """Sign `issuers` (now, unless `signed_at_ms`) into the registry file `path`."""
        at = int(time.time() * 1000) if signed_at_ms is None else signed_at_ms
        write_bytes(path, self.sign(issuers, at), mode=PUBLIC_MODE)

    def __repr__(self) -> str:
        return "OperatorKey(<redacted>)"

    __str__ = __repr__


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A pinned operator key (base64 of 32 raw bytes); `ValueError` if it is not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the operator key is not base64") from exc
    if len(raw) != 32 or base64.b64encode(raw).decode("ascii") != text.strip():
        raise ValueError("the operator key must be the base64 of 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise RegistryUnsigned(f"trust registry: {what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RegistryUnsigned(f"trust registry: {what} is not base64") from exc


def open_signed(data: bytes, key: Ed25519PublicKey) -> SignedRegistry:
    """Check the operator's signature over the payload bytes, then read them.

    Every problem (unsigned, signed by another key, malformed) is a `RegistryUnsigned`."""
    if len(data) > MAX_SIGNED_BYTES:
        raise RegistryUnsigned("trust registry: the file is too large")
    try:
        envelope = json.loads(data)
    except ValueError as exc:
        raise RegistryUnsigned("trust registry: not JSON") from exc
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
        raise RegistryUnsigned(f"trust registry: not a signed registry ({FORMAT}); sign it "
                               f"with `covey issuer publish --operator-key`")
    payload = _b64(envelope.get("payload"), "payload")
    signature = _b64(envelope.get("signature"), "signature")
    try:
        key.verify(signature, payload)
    except InvalidSignature as exc:
        raise RegistryUnsigned("trust registry: the signature does not verify under the "
                               "pinned operator key") from exc
    # Signed by the operator from here on; the checks below catch an operator's mistake.
    try:
        document = json.loads(payload)
        signed_at_ms = document["signed_at_ms"]
        issuers = document["issuers"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryUnsigned("trust registry: the signed payload is not a registry") from exc
    if (document.get("format") != FORMAT or not isinstance(signed_at_ms, int)
            or not isinstance(issuers, list)):
        raise RegistryUnsigned("trust registry: the signed payload is not a registry")
    return SignedRegistry(issuers=issuers, signed_at_ms=signed_at_ms)
