"""Helpers shared by the services: the authenticated principal, the clock, hashing of
bearer secrets, Ed25519 checks through vodozemac, and the server's secret key files."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import vodozemac

from covey.errors import CryptoError, InvalidInput


@dataclass(frozen=True, slots=True)
class Principal:
    """The device a bearer token belongs to."""

    user_id: str
    device_id: str
    device_pk: int
    token_expires_ms: int = 0


def load_or_create_secret_file(path: Path, create: Callable[[], bytes]) -> bytes:
    """The bytes of a secret key file; on first use `create()` is written with mode 0600.

    The key is written whole to a private temporary file, then hard-linked into place
    (atomic, and refused if the name exists): two processes starting together agree on
    one key, and neither ever reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path.read_bytes()
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        data = create()
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_bytes()
        return data
    finally:
        os.unlink(temporary)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def secret_hash(secret: str) -> bytes:
    """Tokens are stored (and compared) only as their SHA-256."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def reject_nul(value: str, *, field: str) -> None:
    """PostgreSQL text cannot hold NUL; refuse it up front rather than fail in storage."""
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain NUL characters", details={"field": field})


def verify_ed25519(signing_key_b64: str, message: bytes, signature_b64: str,
                   *, what: str) -> None:
    """Raise `CryptoError(bad_signature)` unless the signature is valid."""
    try:
        key = vodozemac.Ed25519PublicKey.from_base64(signing_key_b64)
        sig = vodozemac.Ed25519Signature.from_base64(signature_b64)
        key.verify_signature(message, sig)
    except Exception as exc:  # vodozemac raises several unrelated exception types
        raise CryptoError(f"the {what} signature does not verify", code="bad_signature",
                          details={"field": what}) from exc
