"""One error hierarchy for the whole package.

Every error has a stable machine-readable `code` and the HTTP status the server
answers with; the server turns any `CoveyError` into `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

from typing import Any


class CoveyError(Exception):
    """Base class: a problem with a stable code and a human message."""

    code: str = "covey_error"
    status: int = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class InvalidInput(CoveyError):
    """The request is malformed or violates a limit."""

    code = "invalid_request"
    status = 400


class TooLarge(CoveyError):
    code = "too_large"
    status = 413


class QuotaExceeded(TooLarge):
    """An account's stored bytes would pass its quota."""

    code = "blob_quota_exceeded"


class Unauthorized(CoveyError):
    """Missing, bad or expired credentials."""

    code = "unauthorized"
    status = 401


class Forbidden(CoveyError):
    code = "forbidden"
    status = 403


class NotFound(CoveyError):
    code = "not_found"
    status = 404


class Conflict(CoveyError):
    code = "conflict"
    status = 409


class RateLimited(CoveyError):
    code = "rate_limited"
    status = 429


class CryptoError(CoveyError):
    """A cryptographic check failed (bad signature, bad MAC, undecryptable)."""

    code = "crypto_error"
    status = 400


class FrankingError(CryptoError):
    """A message does not open its franking commitment, or a tag is not the server's."""

    code = "franking_mismatch"
