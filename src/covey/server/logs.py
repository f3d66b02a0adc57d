"""Structured logs for `covey server`: one JSON object per line, with the node id and the
id of the request being served. Log calls pass ids and counts, never message content,
tokens or keys; the access line names the route, not the query string or the body."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "covey_request_id", default=None)
_GIVEN_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
access_log = logging.getLogger("covey.access")


class JsonFormatter(logging.Formatter):
    def __init__(self, node_id: str) -> None:
        super().__init__()
        self._node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3), "level": record.levelname.lower(),
            "logger": record.name, "node": self._node_id, "msg": record.getMessage()}
        rid = request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, node_id: str) -> None:
    """JSON lines on standard error for everything the process logs (uvicorn included)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(node_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # uvicorn's own access line shows the raw path with its query: ours replaces it.
    logging.getLogger("uvicorn.access").disabled = True


class RequestIdMiddleware:
    """Give every HTTP request and WebSocket an id (a well-formed `X-Request-Id` from the
    load balancer is kept), echo it in the response and log one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode(
            "latin-1")
        rid = given if _GIVEN_ID.fullmatch(given) else secrets.token_hex(8)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status = int(message.get("status", 0))
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            elif message["type"] == "websocket.accept":
                status = 101
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                route = scope.get("route")
                path = getattr(route, "path", None) or scope.get("path", "")
                access_log.info("%s %s %d", scope.get("method", "WS"), path, status,
                                extra={"fields": {
                                    "method": scope.get("method", "WEBSOCKET"),
                                    "route": path, "status": status,
                                    "ms": round((time.perf_counter() - started) * 1000, 2)}})
            request_id.reset(token)
