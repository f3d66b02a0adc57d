"""The relay's ASGI application: `create_app(settings)` wires storage, services, fanout,
rate limits and the HTTP/WebSocket routers, and migrates the database at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from covey.server.api import ROUTERS
from covey.server.api.errors import install_error_handlers
from covey.server.api.limits import BodyLimitMiddleware
from covey.server.fanout import Fanout, InProcessFanout
from covey.server.files import secure_data
from covey.server.ratelimit import RateLimiter
from covey.server.reporting import include_reporting, start_reporting
from covey.server.services import Services, build_services
from covey.server.storage import Repository, create_engine, upgrade_to_head
from covey.settings import Settings

log = logging.getLogger(__name__)


def _reload_trust_registry_on_sighup(services: Services) -> None:
    """SIGHUP makes the next age request re-read the trust registry (file or URL)."""
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP,
                                                      services.age.source.reload_now)


def create_app(settings: Settings | None = None, *, fanout: Fanout | None = None) -> FastAPI:
    """A relay app for `settings`; pass another `fanout` to deliver across processes."""
    settings = settings or Settings()
    chosen_fanout: Fanout = fanout or InProcessFanout()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(secure_data, settings.data_dir, settings.database_url)
        engine = create_engine(settings.database_url)
        await upgrade_to_head(engine)
        repo = Repository(engine)
        repo.start()
        await chosen_fanout.start()
        services = build_services(settings, repo, chosen_fanout)
        services.blobs.prepare_dirs()
        await services.age.start()
        _reload_trust_registry_on_sighup(services)
        app.state.services = services
        app.state.limiter = RateLimiter.from_settings(settings)
        reporting = await start_reporting(app, settings, services)
        services.scans.start()  # after the report sink is wired: it drains at once
        loops = [asyncio.create_task(services.messages.purge_loop(), name="covey-purge"),
                 asyncio.create_task(services.safety_copies.purge_loop(),
                                     name="covey-safety-copy-purge"),
                 asyncio.create_task(services.blobs.purge_loop(), name="covey-blob-purge")]
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
            await services.age.close()
            await services.scans.close()
            for loop in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
            await reporting.stop()
            await chosen_fanout.close()
            await repo.close()

    app = FastAPI(title="Covey relay", version="1", lifespan=lifespan,
                  description="End-to-end encrypted relay: see docs/protocol.md")
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_envelope_bytes,
                       exempt_prefixes=("/v1/blobs", "/v1/reports"))
    for router in ROUTERS:
        app.include_router(router)
    include_reporting(app)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        """A browser that opens the server's address lands on the moderation console."""
        return RedirectResponse("/console/", status_code=307)

    @app.get("/healthz", tags=["meta"])
    async def healthz() -> dict[str, Any]:
        # The process answers; `trust_registry` tells an operator whether age proofs
        # count (a stale or unsigned registry fails closed, see docs/operations.md).
        services: Services | None = getattr(app.state, "services", None)
        body: dict[str, Any] = {"status": "ok"}
        if services is not None:
            await services.age.source.fresh()
            body["trust_registry"] = services.age.source.health()
        return body

    return app
