"""Reporting and moderation wired into the relay: `include_reporting(app)` adds the
report/block routes and the console; `start_reporting` builds the services at start-up,
hooks blocks and suspensions into login and sending, and runs the gate refresh and the
evidence purge until `stop` is called."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from covey.protocol.wire import ModeratorWarning, ModeratorWarningFrame
from covey.server.api import reports as reports_api
from covey.server.api.limits import BodyLimitMiddleware
from covey.server.fanout import DeviceAddress
from covey.server.services import Services, load_or_create_server_key
from covey.server.services.casework import CaseworkService
from covey.server.services.moderation import ModerationService
from covey.server.services.reports import ReportService
from covey.server.storage.console_repo import ConsoleRepository
from covey.server.storage.image_matches import ImageMatchStore
from covey.server.storage.reports_repo import ReportRepository
from covey.settings import Settings

# A report carries up to 11 messages of up to 64 KiB of text each, JSON-escaped.
MAX_REPORT_BYTES = 4 * 1024 * 1024


class ReportBodyLimit(BodyLimitMiddleware):
    """The body limit for `/v1/reports` only (the relay's own limit exempts it)."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, MAX_REPORT_BYTES, ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/reports"):
            await super().__call__(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def include_reporting(app: FastAPI) -> None:
    from covey.web import router as console_router
    from covey.web.headers import ConsoleHeaders

    app.add_middleware(ReportBodyLimit)
    app.add_middleware(ConsoleHeaders)
    app.include_router(reports_api.router)
    app.include_router(console_router)


@dataclass
class Reporting:
    reports: ReportService
    moderation: ModerationService
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def start_reporting(app: FastAPI, settings: Settings, services: Services) -> Reporting:
    store = ReportRepository(services.repo)
    reports = ReportService(settings, store, services.blobs,
                            load_or_create_server_key(settings.resolved_server_key_file()),
                            services.age.verified_band)
    moderation = ModerationService(settings, store, reports,
                                   detection_backlog=services.scans.backlog)

    async def tell_warned(user_id: str, warning: ModeratorWarning) -> None:
        frame = ModeratorWarningFrame(warning=warning)
        services.fanout.publish([(DeviceAddress(user_id, device), frame)
                                 for device in await services.accounts.directory.devices(
                                     user_id)])

    moderation.on_warned = tell_warned
    reports.events = services.events
    services.scans.report_sink = reports.file_detection
    services.images.report_sink = reports.file_image_match
    reports.image_matcher = services.images
    moderation.image_matches = services.images.store
    await reports.refresh_gate()
    services.auth.account_gate = reports.gate.check_login
    reports.revoke_account = services.auth.revoke_account
    services.messages.send_gate = reports.gate.check_send
    app.state.reports = reports
    app.state.moderation = moderation
    app.state.casework = CaseworkService(settings, store, ConsoleRepository(services.repo),
                                         services.age.band_of,
                                         ImageMatchStore(services.repo))
    app.state.settings = settings
    running = Reporting(reports, moderation)
    running.tasks.append(asyncio.create_task(reports.gate_loop(), name="covey-gate"))
    running.tasks.append(asyncio.create_task(reports.purge_loop(), name="covey-evidence"))
    running.tasks.append(asyncio.create_task(moderation.warm_up(), name="covey-warm-up"))
    return running
