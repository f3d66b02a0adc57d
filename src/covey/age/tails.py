"""Tails files: where a revocation registry's (public, issuer-made) tails file may live and
where it may come from.

A tails file is named by its hash, base58 of the SHA-256 of its bytes, and that hash comes
from the issuer. So the hash is checked before it names anything: canonical base58 of
exactly 32 bytes (no `/`, no `..`), equal to the registry definition's `tailsHash`, the
path kept inside the tails directory, and the bytes' digest checked before they are saved.
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from covey.errors import InvalidInput

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
HASH_BYTES = 32
# base58 of 32 bytes is at most 44 characters; anything longer is not a tails hash.
_MAX_CHARS = 44


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    text = ""
    while number:
        number, digit = divmod(number, 58)
        text = _ALPHABET[digit] + text
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + text


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + _INDEX[char]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def tails_digest(data: bytes) -> str:
    """The tails hash of a file's bytes (what AnonCreds names it by)."""
    return _b58encode(hashlib.sha256(data).digest())


def check_tails_hash(value: object, expected: object | None = None) -> str:
    """`value` if it is a well-formed tails hash (and equals `expected`, the registry
    definition's `tailsHash`, when given); `InvalidInput` otherwise."""
    if (not isinstance(value, str) or not 0 < len(value) <= _MAX_CHARS
            or any(c not in _INDEX for c in value)):
        raise InvalidInput("tails hash must be base58 of a SHA-256 digest")
    raw = _b58decode(value)
    if len(raw) != HASH_BYTES or _b58encode(raw) != value:
        raise InvalidInput("tails hash must be base58 of a SHA-256 digest")
    if expected is not None and value != expected:
        raise InvalidInput("tails hash differs from the registry definition's tailsHash")
    return value


def tails_path(tails_dir: Path, tails_hash: str) -> Path:
    """Where the tails file `tails_hash` lives in `tails_dir`; never outside it."""
    name = check_tails_hash(tails_hash)
    root = tails_dir.resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise InvalidInput("tails file path leaves the tails directory")
    return path


def check_tails_url(url: str) -> str:
    """A tails location a wallet may download from: HTTPS, or plain HTTP to a loopback
    address only (a local issuer in development and tests; the hash is checked anyway)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname is not None:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return url
    raise InvalidInput("tails files are downloaded over https:// only")
