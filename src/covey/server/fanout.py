"""Delivery notifications between the services and connected WebSockets.

Services publish "device X has frame F" through a `Fanout`; each WebSocket subscribes
for its own device. `InProcessFanout` serves one process; `NatsFanout`
(`nats_fanout.py`) serves the nodes of a cluster through NATS JetStream with the same
interface, so the services never change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from covey.protocol.wire import (
    AgeProofNeededFrame,
    ContactRequestFrame,
    DeliveryFrame,
    DeviceListChangedFrame,
    GroupChangedFrame,
    GroupInvitationFrame,
    GuardianAlertFrame,
    GuardianLinkFrame,
    KeysLowFrame,
    ModeratorWarningFrame,
    SafetyNoticeFrame,
)

PushFrame = (DeliveryFrame | GroupChangedFrame | KeysLowFrame | AgeProofNeededFrame
             | GuardianAlertFrame | ContactRequestFrame | DeviceListChangedFrame
             | GuardianLinkFrame | ModeratorWarningFrame | GroupInvitationFrame
             | SafetyNoticeFrame)


class Resync:
    """Not a frame: tells a connection to re-read its mailbox (a notification may have
    been lost between nodes)."""

    __slots__ = ()


RESYNC = Resync()


@dataclass(frozen=True, slots=True)
class DeviceAddress:
    user_id: str
    device_id: str


class Subscription(Protocol):
    """Frames for one device, in publish order, until `close()`."""

    queue: asyncio.Queue[PushFrame | Resync]

    async def ready(self) -> None:
        """Returns once every frame published from now on reaches `queue`."""

    def close(self) -> None: ...


class Fanout(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def publish(self, items: Iterable[tuple[DeviceAddress, PushFrame]]) -> None:
        """Notify connected devices without blocking; best effort (the mailbox is the
        durable copy). A networked fanout buffers here and sends from its own task."""

    def subscribe(self, device: DeviceAddress) -> Subscription: ...


class _LocalSubscription:
    def __init__(self, owner: InProcessFanout, device: DeviceAddress) -> None:
        self.queue: asyncio.Queue[PushFrame | Resync] = asyncio.Queue()
        self._owner = owner
        self._device = device

    async def ready(self) -> None:
        return None

    def close(self) -> None:
        self._owner._remove(self._device, self)


class InProcessFanout:
    """Fanout within one process: a queue per subscribed connection."""

    def __init__(self) -> None:
        self._subs: dict[DeviceAddress, list[_LocalSubscription]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._subs.clear()

    def publish(self, items: Iterable[tuple[DeviceAddress, PushFrame]]) -> None:
        subs = self._subs
        for device, frame in items:
            for sub in subs.get(device, ()):
                sub.queue.put_nowait(frame)

    def publish_to_all(self, item: Resync) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.queue.put_nowait(item)

    def subscribe(self, device: DeviceAddress) -> Subscription:
        sub = _LocalSubscription(self, device)
        self._subs.setdefault(device, []).append(sub)
        return sub

    def _remove(self, device: DeviceAddress, sub: _LocalSubscription) -> None:
        subs = self._subs.get(device)
        if subs and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._subs[device]
