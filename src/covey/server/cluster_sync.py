"""Cache invalidation between the nodes of a cluster, over NATS (docs/operations.md,
"Scaling out"). The services drop their own cached facts when they change them here
(`PolicyService.forget` for bands, contacts and blocks; `DeviceDirectory.invalidate`
for device lists; `ReportService.suspend_account` for suspensions); in a cluster those
same calls are also broadcast, and every other node drops the same entries and re-reads
its block and suspension set at once, instead of waiting for its timers.

The wrapping is done here, at wiring time, so the services stay unaware of NATS."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from covey.server.nats_fanout import NatsFanout
from covey.server.services import Services
from covey.server.services.reports import ReportService

log = logging.getLogger(__name__)


class _GateRefresh:
    """Re-reads blocks and suspensions soon, once for a burst of invalidations."""

    def __init__(self, reports: ReportService) -> None:
        self._reports = reports
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def soon(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self._reports.refresh_gate()
            except Exception:
                log.warning("re-reading blocks and suspensions failed; the timer retries")
            if not self._again:
                return


def share_invalidations(services: Services, reports: ReportService,
                        fanout: NatsFanout) -> None:
    node = fanout.node_id
    gate = _GateRefresh(reports)

    def send(kind: str, users: list[str]) -> None:
        fanout.broadcast(kind, json.dumps({"node": node, "users": users}).encode())

    def receive(handler: Callable[[list[str]], None]) -> Callable[[bytes], None]:
        def on_message(data: bytes) -> None:
            try:
                body: dict[str, Any] = json.loads(data)
                users = [str(u) for u in body.get("users", [])]
            except (ValueError, TypeError, AttributeError):
                return
            if body.get("node") != node:  # our own change is applied already
                handler(users)
        return on_message

    policy = services.policy
    local_forget = policy.forget

    def forget(*users: str) -> None:
        local_forget(*users)
        send("forget", list(users))

    def forget_remote(users: list[str]) -> None:
        local_forget(*users)
        gate.soon()  # blocks change through here too

    policy.forget = forget  # type: ignore[method-assign]
    fanout.on_control("forget", receive(forget_remote))

    directory = services.accounts.directory
    local_invalidate = directory.invalidate

    def invalidate(user_id: str) -> None:
        local_invalidate(user_id)
        send("devices", [user_id])

    def invalidate_remote(users: list[str]) -> None:
        for user in users:
            local_invalidate(user)

    directory.invalidate = invalidate  # type: ignore[method-assign]
    fanout.on_control("devices", receive(invalidate_remote))

    local_suspend = reports.suspend_account

    async def suspend_account(user_id: str) -> None:
        await local_suspend(user_id)
        send("gate", [user_id])

    reports.suspend_account = suspend_account  # type: ignore[method-assign]
    fanout.on_control("gate", receive(lambda _users: gate.soon()))
