"""The relay's ASGI application: `create_app(settings)` wires storage, services, fanout,
rate limits and the HTTP/WebSocket routers, and migrates the database at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from covey.server.api import ROUTERS
from covey.server.api.errors import install_error_handlers
from covey.server.api.limits import BodyLimitMiddleware
from covey.server.cluster import ClusterRefused, Membership, new_node_id
from covey.server.cluster_sync import share_invalidations
from covey.server.fanout import Fanout, InProcessFanout
from covey.server.files import secure_data
from covey.server.logs import RequestIdMiddleware
from covey.server.metrics import Metrics
from covey.server.nats_fanout import NatsFanout
from covey.server.ratelimit import Limit, RateLimiter, SharedRateLimiter
from covey.server.reporting import include_reporting, start_reporting
from covey.server.services import Services, build_services
from covey.server.services._common import now_ms
from covey.server.services.safety_events import DetectionRaised, ReportFiled, SafetyEvent
from covey.server.storage import Repository, cluster_repo, create_engine, is_sqlite, upgrade_to_head
from covey.server.storage.cluster_repo import database_reachable
from covey.settings import Settings

log = logging.getLogger(__name__)


def _reload_trust_registry_on_sighup(services: Services) -> None:
    """SIGHUP makes the next age request re-read the trust registry (file or URL)."""
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP,
                                                      services.age.source.reload_now)


def _cluster_fanout(settings: Settings, node_id: str, metrics: Metrics) -> Fanout:
    assert settings.nats_url is not None
    return NatsFanout(settings.nats_url, settings.cluster_name, node_id,
                      resync_s=settings.cluster_resync_s,
                      on_lost=metrics.notifications_lost.inc,
                      on_remote=metrics.cluster_notification.observe)


def _limiter(settings: Settings, engine: AsyncEngine,
             membership: Membership | None) -> RateLimiter:
    """Per process, or for a cluster: shared through the database (see ratelimit.py)."""
    if membership is None or not membership.clustered:
        return RateLimiter.from_settings(settings)

    async def settle(items: list[tuple[str, str, float, float, Limit]]
                     ) -> dict[tuple[str, str], float]:
        return await cluster_repo.settle_shares(engine, [
            cluster_repo.Settlement(action, key, credit, want, limit.per_second,
                                    limit.burst)
            for action, key, credit, want, limit in items], now_ms())

    return SharedRateLimiter.shared_from_settings(
        settings, settle, lambda: 1 + len(membership.peers))


class _LeaderWork:
    """Retention purges: on one node of a cluster (its leader), on a lone server always."""

    def __init__(self, start: Callable[[], list[asyncio.Task[None]]]) -> None:
        self._start = start
        self._tasks: list[asyncio.Task[None]] = []
        self._old: list[asyncio.Task[None]] = []

    def set(self, running: bool) -> None:
        if running and not self._tasks:
            self._tasks = self._start()
        elif not running and self._tasks:
            for task in self._tasks:
                task.cancel()
            self._old += self._tasks
            self._tasks = []

    async def stopped(self) -> None:
        for task in self._old:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _count_events(metrics: Metrics) -> Any:
    async def on_event(event: SafetyEvent) -> None:
        if isinstance(event, ReportFiled):
            metrics.reports_filed.inc()
        elif isinstance(event, DetectionRaised):
            metrics.detections.labels(detector=event.detector).inc()
    return on_event


def create_app(settings: Settings | None = None, *, fanout: Fanout | None = None,
               node_id: str | None = None) -> FastAPI:
    """A relay app for `settings`; with `nats_url` set it is a node of a cluster (or pass
    another `fanout`). `node_id` names this process in logs, metrics and lease rows."""
    settings = settings or Settings()
    node = node_id or new_node_id()
    metrics = Metrics(node)
    chosen_fanout: Fanout = fanout or (_cluster_fanout(settings, node, metrics)
                                       if settings.nats_url else InProcessFanout())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(secure_data, settings.data_dir, settings.database_url)
        engine = create_engine(settings.database_url)
        await upgrade_to_head(engine)
        membership = None
        if not is_sqlite(settings.database_url):
            membership = Membership(engine, settings, node)
            try:
                await membership.join()
            except ClusterRefused as exc:
                log.error("%s", exc)
                await membership.close()
                await engine.dispose()
                raise
        app.state.engine = engine
        repo = Repository(engine)
        repo.start()
        await chosen_fanout.start()
        services = build_services(settings, repo, chosen_fanout)
        services.blobs.prepare_dirs()
        await services.age.start()
        _reload_trust_registry_on_sighup(services)
        app.state.services = services
        app.state.limiter = _limiter(settings, engine, membership)
        app.state.limiter.on_refused = (
            lambda action: metrics.rate_limit_refusals.labels(action=action).inc())
        services.events.subscribe(_count_events(metrics))
        reporting = await start_reporting(app, settings, services)
        if isinstance(chosen_fanout, NatsFanout):
            share_invalidations(services, reporting.reports, chosen_fanout)
        if membership is not None:
            try:
                await membership.check_keys()  # every key file exists by now
            except ClusterRefused as exc:
                log.error("%s", exc)
                raise
            membership.on_peers = metrics.cluster_peers.set
            membership.start()

        async def scan_depth() -> None:
            metrics.scan_queue_depth.set(await services.scans.store.depth())
        metrics.before_scrape(scan_depth)
        if isinstance(app.state.limiter, SharedRateLimiter):
            app.state.limiter.start()
        services.scans.start()  # after the report sink is wired: it drains at once
        await services.images.start()
        leader_work = _LeaderWork(lambda: [
            asyncio.create_task(services.messages.purge_loop(), name="covey-purge"),
            asyncio.create_task(services.safety_copies.purge_loop(),
                                name="covey-safety-copy-purge"),
            asyncio.create_task(services.blobs.purge_loop(), name="covey-blob-purge")])
        if membership is None:
            leader_work.set(True)
        else:
            def on_leader(leader: bool) -> None:
                metrics.cluster_leader.set(1 if leader else 0)
                leader_work.set(leader)
            membership.on_leader = on_leader
            on_leader(membership.leader)
        try:
            yield
        finally:
            leader_work.set(False)
            await services.age.close()
            await services.scans.close()
            await services.images.close()
            await leader_work.stopped()
            await reporting.stop()
            if isinstance(app.state.limiter, SharedRateLimiter):
                await app.state.limiter.close()
            await chosen_fanout.close()
            if membership is not None:
                await membership.close()
            await repo.close()

    app = FastAPI(title="Covey relay", version="1", lifespan=lifespan,
                  description="End-to-end encrypted relay: see docs/protocol.md")
    app.state.metrics = metrics
    app.state.node_id = node
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_envelope_bytes,
                       exempt_prefixes=("/v1/blobs", "/v1/reports"))
    for router in ROUTERS:
        app.include_router(router)
    include_reporting(app)
    app.add_middleware(RequestIdMiddleware)

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

    @app.get("/readyz", tags=["meta"])
    async def readyz() -> JSONResponse:
        """200 when this node can serve (database and, in a cluster, NATS answer); 503
        naming what is unreachable, so a load balancer sends traffic elsewhere."""
        problems = []
        engine = getattr(app.state, "engine", None)
        if engine is None or not await database_reachable(engine):
            problems.append("database unreachable")
        ping = getattr(chosen_fanout, "ping", None)
        if ping is not None and not await ping():
            problems.append("NATS unreachable")
        body: dict[str, Any] = {"status": "ready" if not problems else "unready",
                                "node_id": node}
        if problems:
            body["reason"] = "; ".join(problems)
        return JSONResponse(body, status_code=503 if problems else 200)

    @app.get("/metrics", tags=["meta"], include_in_schema=False)
    async def metrics_endpoint() -> Response:
        data, content_type = await metrics.render()
        return Response(data, media_type=content_type)

    return app
