"""Byte encodings shared by every layer: unpadded standard base64 and canonical JSON.

Canonical JSON is RFC 8785 (JCS); it is the only encoder used for anything that is
MACed or signed, so both sides always hash the same bytes.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import rfc8785

from covey.errors import InvalidInput


def b64encode(data: bytes) -> str:
    """Standard base64 without padding (the vodozemac / Matrix convention)."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str, *, field: str = "value") -> bytes:
    """Strict inverse of `b64encode`; accepts correctly padded input too. Raises
    `InvalidInput`.

    Only the canonical encoding is accepted: the unused low bits of the last character
    must be zero (otherwise four strings decode to every 32-byte value, and a key, tag or
    id could be presented under several spellings)."""
    if not isinstance(text, str):
        raise InvalidInput(f"{field} must be a base64 string")
    padded = text + "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise InvalidInput(f"{field} is not valid base64") from exc
    canonical = b64encode(data)
    if text not in (canonical, canonical + "=" * (-len(canonical) % 4)):
        raise InvalidInput(f"{field} is not canonical base64 (non-zero trailing bits or "
                           f"padding)")
    return data


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes (sorted keys, no whitespace, UTF-8)."""
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InvalidInput(f"value cannot be canonicalised: {exc}") from exc


def labelled(label: str, value: Any) -> bytes:
    """Domain-separated canonical bytes: `covey/<label>/v1 NUL canonical_json(value)`."""
    return f"covey/{label}/v1".encode() + b"\x00" + canonical_json(value)
