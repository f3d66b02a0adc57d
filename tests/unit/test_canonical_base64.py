"""Only the canonical base64 spelling of a value is accepted: four strings decode to every
32-byte value when the unused bits of the last character are ignored."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import TypeAdapter, ValidationError

from covey.errors import InvalidInput
from covey.protocol._encoding import b64decode, b64encode
from covey.protocol.wire import B64, B64_32, B64_SIG

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _spellings(data: bytes) -> list[str]:
    """Every string the lenient decoder maps to `data` (unpadded)."""
    text = b64encode(data)
    spare = (6 - len(data) * 8 % 6) % 6  # unused bits in the last character
    last = _ALPHABET.index(text[-1])
    return [text[:-1] + _ALPHABET[last | extra] for extra in range(2 ** spare)]


@pytest.mark.parametrize("size", [1, 2, 3, 31, 32, 33, 64])
def test_only_the_canonical_spelling_decodes(size: int) -> None:
    data = os.urandom(size)
    canonical = b64encode(data)
    assert b64decode(canonical) == data
    assert b64decode(base64.b64encode(data).decode()) == data  # correctly padded
    others = [s for s in _spellings(data) if s != canonical]
    assert len(others) == (0 if size % 3 == 0 else (3 if size % 3 == 2 else 15))
    for other in others:
        assert base64.b64decode(other + "=" * (-len(other) % 4)) == data  # lenient: same
        with pytest.raises(InvalidInput, match="canonical"):
            b64decode(other)
    if size % 3:
        with pytest.raises(InvalidInput):
            b64decode(canonical + "===")


def test_wire_types_refuse_non_canonical_spellings() -> None:
    for kind, size in [(B64_32, 32), (B64_SIG, 64), (B64, 32), (B64, 100)]:
        adapter = TypeAdapter(kind)
        data = os.urandom(size)
        adapter.validate_python(b64encode(data))
        for other in _spellings(data):
            if other == b64encode(data):
                continue
            with pytest.raises(ValidationError):
                adapter.validate_python(other)
