"""Small frozen types for secret and MAC values: redacted repr, constant-time equality."""

from __future__ import annotations

import hmac
import secrets as _secrets
from dataclasses import dataclass, field
from typing import Any, Self

from covey.errors import InvalidInput
from covey.protocol._encoding import b64decode, b64encode


class _Redacted:
    def __repr__(self) -> str:
        return "<redacted>"


REDACTED: Any = _Redacted()


class RedactedSecretFields:
    """Pydantic mixin: a field declared with `Field(repr=False)` (a key, a token) shows as
    `<redacted>` in `repr` and `str`, so a logged or printed model never carries it."""

    def __repr_args__(self) -> Any:
        fields = type(self).model_fields  # type: ignore[attr-defined]
        for name, info in fields.items():
            yield name, getattr(self, name) if info.repr else REDACTED


@dataclass(frozen=True, eq=False)
class _Bytes32:
    """32 raw bytes. Subclasses decide whether `repr` may show them."""

    raw: bytes = field(repr=False)
    _secret = True

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != 32:
            raise InvalidInput(f"{type(self).__name__} must be exactly 32 bytes")

    @classmethod
    def generate(cls) -> Self:
        return cls(_secrets.token_bytes(32))

    @classmethod
    def from_b64(cls, text: str) -> Self:
        raw = b64decode(text, field=cls.__name__)
        if len(raw) != 32:
            raise InvalidInput(f"{cls.__name__} must decode to 32 bytes, got {len(raw)}")
        return cls(raw)

    def to_b64(self) -> str:
        return b64encode(self.raw)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Bytes32)
        return hmac.compare_digest(self.raw, other.raw)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.raw))

    def __repr__(self) -> str:
        if self._secret:
            return f"{type(self).__name__}(<redacted>)"
        return f"{type(self).__name__}({self.to_b64()})"

    __str__ = __repr__


class FrankingKey(_Bytes32):
    """Per-message random key `fk`; travels only inside the ciphertext (or in a report)."""


class ServerFrankingKey(_Bytes32):
    """The server's HMAC key for franking tags. Never leaves the server."""


class FrankingCommitment(_Bytes32):
    """`c = HMAC(fk, canonical(content, context))`; travels outside the ciphertext."""

    _secret = False


class FrankingTag(_Bytes32):
    """The server's HMAC over the commitment and delivery context."""

    _secret = False
