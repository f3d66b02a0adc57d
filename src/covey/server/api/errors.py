"""Turn every error into `{"error": {"code", "message", "details"?}}`: CoveyError with its
own status, schema violations as 422 naming the field, HTTP errors by status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from covey.errors import CoveyError

log = logging.getLogger(__name__)

_HTTP_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden",
               404: "not_found", 405: "method_not_allowed", 406: "not_acceptable",
               409: "conflict", 413: "too_large", 415: "unsupported_media_type",
               422: "invalid_request", 429: "rate_limited"}


def error_json(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return {"error": body}


def covey_error_response(exc: CoveyError) -> JSONResponse:
    headers = None
    retry = exc.details.get("retry_after_s") if exc.details else None
    if exc.status in (429, 503) and isinstance(retry, int):
        headers = {"Retry-After": str(retry)}
    return JSONResponse(exc.to_json(), status_code=exc.status, headers=headers)


def describe_validation_errors(errors: Any) -> tuple[str, list[dict[str, Any]]]:
    """A one-line message naming the first bad field, and a JSON-safe list of all."""
    safe: list[dict[str, Any]] = []
    for err in list(errors)[:20]:
        loc = [p if isinstance(p, int) else _text(p) for p in err.get("loc", ())]
        safe.append({"field": ".".join(str(p) for p in loc), "loc": loc,
                     "message": _text(err.get("msg", ""), 200),
                     "type": _text(err.get("type", ""))})
    if not safe:
        return "the request is not valid", safe
    first = safe[0]
    return f"{first['field'] or 'request'}: {first['message']}", safe


def _text(value: Any, limit: int = 64) -> str:
    """Input-derived text (a field name can be any JSON key) made encodable: lone
    surrogates escaped, length bounded."""
    text = str(value)[:limit]
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


DATABASE_UNAVAILABLE = CoveyError(
    "the database is unreachable right now; nothing was stored: retry shortly",
    code="storage_unavailable", status=503, details={"retry_after_s": 1})


def is_database_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached (not that the input was bad)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, InterfaceError | OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, ConnectionError | TimeoutError | OSError)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CoveyError)
    async def _covey(_request: Request, exc: CoveyError) -> JSONResponse:
        return covey_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        message, errors = describe_validation_errors(exc.errors())
        return JSONResponse(error_json("invalid_request", message, {"errors": errors}),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(error_json(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        if is_database_outage(exc):
            return covey_error_response(DATABASE_UNAVAILABLE)
        log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
        return JSONResponse(error_json("internal_error", "internal server error"),
                            status_code=500)
