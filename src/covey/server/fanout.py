"""Delivery notifications between the services and connected WebSockets.

Services publish "device X has frame F" through a `Fanout`; each WebSocket subscribes
for its own device. `InProcessFanout` serves one process; a NATS JetStream fanout for
several server processes implements the same interface (subjects per device), so the
services never change.
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
    GuardianAlertFrame,
    KeysLowFrame,
    SafetyNoticeFrame,
)

PushFrame = (DeliveryFrame | GroupChangedFrame | KeysLowFrame | AgeProofNeededFrame
             | GuardianAlertFrame | ContactRequestFrame | DeviceListChangedFrame
             | SafetyNoticeFrame)


@dataclass(frozen=True, slots=True)
class DeviceAddress:
    user_id: str
    device_id: str


class Subscription(Protocol):
    """Frames for one device, in publish order, until `close()`."""

    queue: asyncio.Queue[PushFrame]

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
        self.queue: asyncio.Queue[PushFrame] = asyncio.Queue()
        self._owner = owner
        self._device = device

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
