"""The issuer's HTTP service: offer → request → credential, pending until its check decides.

A small ASGI app over one issuer directory (`covey issuer serve`). Every call re-reads
the directory under its lock, so `covey issuer approve` in another process is seen at
once. Endpoints (JSON; errors are `{"error": {"code", "message"}}`):

- `GET  /v1/issuer`              the trust-registry entry (public material)
- `POST /v1/offers`              a fresh single-use credential offer
- `POST /v1/requests`            `{"request": <wallet request>, "evidence": {...}}` →
                                 `{"ticket_id", "status": "pending"|"issued", "message"?}`
- `GET  /v1/requests/{ticket}`   the same answer, once decided (issued once, then gone)
- `GET  /v1/tails/{tails_hash}`  a revocation registry's tails file
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse

from covey.age.checks import BirthDateCheck, ManualApproval
from covey.age.issuer import IssuanceResult, Issuer
from covey.errors import CoveyError, InvalidInput, NotFound

MAX_REQUEST_BYTES = 64 * 1024


def load_check(spec: str | None) -> BirthDateCheck:
    """`module:attribute` naming a `BirthDateCheck` class or instance; default manual."""
    if not spec:
        return ManualApproval()
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise InvalidInput("a check is named module:attribute")
    found = getattr(importlib.import_module(module_name), attribute)
    check = found() if isinstance(found, type) else found
    if not isinstance(check, BirthDateCheck):
        raise InvalidInput(f"{spec} has no review(evidence) method")
    return check


def _answer(result: IssuanceResult) -> dict[str, Any]:
    body: dict[str, Any] = {"ticket_id": result.ticket_id, "status": result.status}
    if result.message is not None:
        body["message"] = result.message
    return body


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_REQUEST_BYTES:
        raise InvalidInput("request too large")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput("the body is not JSON") from exc
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    return body


def create_issuer_app(directory: Path, check: BirthDateCheck | None = None) -> FastAPI:
    """The issuing service for the issuer in `directory` (see `Issuer.create`)."""
    issuer = Issuer(directory, check or ManualApproval())
    app = FastAPI(title="Covey age-credential issuer", version="1")

    @app.exception_handler(CoveyError)
    async def _covey(_request: Request, exc: CoveyError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status)

    @app.get("/v1/issuer")
    def public() -> dict[str, Any]:
        return issuer.publish()

    @app.post("/v1/offers")
    def offer() -> dict[str, Any]:
        return issuer.offer()

    @app.post("/v1/requests")
    async def submit(request: Request) -> dict[str, Any]:
        body = await _json_body(request)
        evidence = body.get("evidence", {})
        if not isinstance(evidence, dict):
            raise InvalidInput("evidence must be an object")
        wallet_request = body.get("request")
        if not isinstance(wallet_request, dict):
            raise InvalidInput("request must be an object")
        # The issuer does file I/O under a lock and CL signing: keep the loop free.
        result = await anyio.to_thread.run_sync(issuer.submit_request, wallet_request,
                                                evidence)
        return _answer(result)

    @app.get("/v1/requests/{ticket_id}")
    def collect(ticket_id: str) -> dict[str, Any]:
        return _answer(issuer.collect(ticket_id))

    @app.get("/v1/tails/{tails_hash}")
    def tails(tails_hash: str) -> FileResponse:
        path = issuer.tails_file(tails_hash)  # any of the issuer's registries
        if path is None:
            raise NotFound("no such tails file", code="unknown_tails")
        return FileResponse(path, media_type="application/octet-stream")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
