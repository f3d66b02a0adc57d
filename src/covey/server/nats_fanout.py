"""Delivery notifications between cluster nodes over NATS JetStream.

After a commit the node publishes each frame on its device's subject
`<cluster>.dlv.<device digest>.<origin node>`, which a JetStream stream captures (memory,
one minute); a node holding a device's WebSocket subscribes to that device's subjects
while it is connected. The database stays the source of truth: a notification that is
lost (NATS restarting, a node reconnecting) costs latency, never a message, because every
connection re-reads its mailbox when its node reconnects to NATS, when another node says
it could not publish, and every `cluster_resync_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from pydantic import TypeAdapter

from covey.server.fanout import (
    RESYNC,
    DeviceAddress,
    InProcessFanout,
    PushFrame,
    Subscription,
)

log = logging.getLogger(__name__)

_PUSH_FRAME: TypeAdapter[PushFrame] = TypeAdapter(PushFrame)
_STREAM_MAX_AGE_S = 60.0
_STREAM_MAX_BYTES = 256 * 1024 * 1024


def device_digest(device: DeviceAddress) -> str:
    """A subject token for a device: ids may hold characters NATS subjects cannot, and
    a digest keeps them out of NATS monitoring pages."""
    return hashlib.blake2b(f"{device.user_id}\x00{device.device_id}".encode(),
                           digest_size=12).hexdigest()


class _ClusterSubscription:
    def __init__(self, owner: NatsFanout, device: DeviceAddress,
                 local: Subscription) -> None:
        self._owner = owner
        self._device = device
        self._local = local
        self.queue = local.queue

    async def ready(self) -> None:
        await self._owner._interest(self._device)

    def close(self) -> None:
        self._local.close()
        self._owner._release(self._device)


class NatsFanout:
    """A `Fanout` for a cluster node: local delivery in process, other nodes over NATS."""

    def __init__(self, url: str, cluster: str, node_id: str, *, resync_s: float,
                 on_lost: Callable[[int], None] | None = None,
                 on_remote: Callable[[float], None] | None = None) -> None:
        self._url = url
        self._cluster = cluster
        self.node_id = node_id
        self._resync_s = resync_s
        self._on_lost = on_lost
        self._on_remote = on_remote
        self._local = InProcessFanout()
        self._nc: NatsClient | None = None
        self._subs: dict[DeviceAddress, tuple[int, Any]] = {}  # refcount, NATS sub
        self._pending: dict[DeviceAddress, asyncio.Future[None]] = {}
        self._outbox: list[tuple[str, bytes]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = False
        self._closing = False
        self._last_error_log = -10.0
        self._control: dict[str, Callable[[bytes], None]] = {}

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._nc = await nats.connect(
            self._url, name=f"covey-{self.node_id}", max_reconnect_attempts=-1,
            reconnect_time_wait=0.25, connect_timeout=5, allow_reconnect=True,
            disconnected_cb=self._disconnected, reconnected_cb=self._reconnected,
            error_cb=self._error, pending_size=64 * 1024 * 1024)
        self.connected = True
        await self._ensure_stream()
        await self._nc.subscribe(f"{self._cluster}.ctl.>", cb=self._on_control)
        self.on_control("resync", lambda _data: self.resync_all())
        self._tasks = [asyncio.create_task(self._send_loop(), name="covey-nats-send"),
                       asyncio.create_task(self._resync_loop(), name="covey-nats-resync")]

    async def _ensure_stream(self) -> None:
        assert self._nc is not None
        js = self._nc.jetstream()
        config = StreamConfig(
            name=f"{self._cluster.upper().replace('-', '_')}_DELIVERY",
            subjects=[f"{self._cluster}.dlv.>"], retention=RetentionPolicy.LIMITS,
            storage=StorageType.MEMORY, max_age=_STREAM_MAX_AGE_S,
            max_bytes=_STREAM_MAX_BYTES, discard=DiscardPolicy.OLD, num_replicas=1)
        try:
            await js.add_stream(config)
        except BadRequestError:  # exists with other limits (an older node): take ours
            await js.update_stream(config)

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._flush_outbox()
                await self._nc.drain()
        await self._local.close()

    async def _disconnected(self) -> None:
        self.connected = False
        if self._closing:
            return
        log.warning("lost the connection to NATS; reconnecting")

    async def _reconnected(self) -> None:
        self.connected = True
        log.warning("reconnected to NATS: every connection re-reads its mailbox")
        # Notifications to or from this node may have been lost meanwhile: ours catch up,
        # and the others are told to, for what we could not publish.
        self.resync_all()
        self.broadcast("resync", b"")

    async def _error(self, exc: Exception) -> None:
        # Every reconnect attempt fails the same way while NATS is down: say it now and then.
        now = time.monotonic()
        if now - self._last_error_log >= 10:
            self._last_error_log = now
            log.warning("NATS: %s", type(exc).__name__)

    async def ping(self) -> bool:
        """Whether NATS answers now (for /readyz)."""
        if self._nc is None or not self._nc.is_connected:
            return False
        try:
            await asyncio.wait_for(self._nc.flush(), 1.0)
            return True
        except Exception:
            return False

    # --- publishing --------------------------------------------------------------------

    def _subject(self, device: DeviceAddress) -> str:
        return f"{self._cluster}.dlv.{device_digest(device)}.{self.node_id}"

    def publish(self, items: Iterable[tuple[DeviceAddress, PushFrame]]) -> None:
        items = list(items)
        self._local.publish(items)
        stamp = f"{time.time():.6f} ".encode()
        for device, frame in items:
            self._outbox.append((self._subject(device),
                                 stamp + frame.model_dump_json().encode()))
        self._wake.set()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush_outbox()

    async def _flush_outbox(self) -> None:
        assert self._nc is not None
        batch, self._outbox = self._outbox, []
        lost = 0
        for subject, payload in batch:
            try:
                # Into the stream's subjects without waiting for each ack on the send path
                # (docs/operations.md measures why); a failure is caught up from the database.
                await self._nc.publish(subject, payload)
            except Exception:
                lost += 1
        if lost:
            if self._on_lost is not None:
                self._on_lost(lost)
            log.warning("%d delivery notifications could not be published", lost)
            self.broadcast("resync", b"")

    def broadcast(self, kind: str, data: bytes) -> None:
        """A control message to every node (this one included), best effort."""
        if self._nc is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._nc.publish(f"{self._cluster}.ctl.{kind}", data))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def on_control(self, kind: str, handler: Callable[[bytes], None]) -> None:
        self._control[kind] = handler

    async def _on_control(self, msg: Msg) -> None:
        handler = self._control.get(msg.subject.rsplit(".", 1)[-1])
        if handler is not None:
            try:
                handler(msg.data)
            except Exception:
                log.exception("control message %s failed", msg.subject)

    # --- subscribing -------------------------------------------------------------------

    def subscribe(self, device: DeviceAddress) -> Subscription:
        count, sub = self._subs.get(device, (0, None))
        self._subs[device] = (count + 1, sub)
        return _ClusterSubscription(self, device, self._local.subscribe(device))

    async def _interest(self, device: DeviceAddress) -> None:
        """Subscribe this node to the device's subjects (once per device) and wait until
        NATS has it, so nothing published after this returns is missed."""
        entry = self._subs.get(device)
        if entry is None or self._nc is None:
            return
        if entry[1] is not None:
            return
        pending = self._pending.get(device)
        if pending is not None:
            await pending
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[device] = future
        try:
            async def on_frame(msg: Msg) -> None:
                self._on_remote_frame(device, msg)

            sub = await self._nc.subscribe(
                f"{self._cluster}.dlv.{device_digest(device)}.*", cb=on_frame)
            current = self._subs.get(device)
            if current is None:  # the device went away meanwhile
                await sub.unsubscribe()
            else:
                self._subs[device] = (current[0], sub)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.flush(), 2)
        finally:
            self._pending.pop(device, None)
            future.set_result(None)

    def _release(self, device: DeviceAddress) -> None:
        entry = self._subs.get(device)
        if entry is None:
            return
        count, sub = entry
        if count > 1:
            self._subs[device] = (count - 1, sub)
            return
        del self._subs[device]
        if sub is not None:
            task = asyncio.get_running_loop().create_task(sub.unsubscribe())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _on_remote_frame(self, device: DeviceAddress, msg: Msg) -> None:
        if msg.subject.endswith(f".{self.node_id}"):
            return  # ours: delivered in process already
        stamp, _, body = msg.data.partition(b" ")
        try:
            frame = _PUSH_FRAME.validate_json(body)
        except ValueError:
            log.warning("dropped a malformed delivery notification")
            return
        if self._on_remote is not None:
            with contextlib.suppress(ValueError):
                self._on_remote(max(0.0, time.time() - float(stamp)))
        self._local.publish([(device, frame)])

    # --- catching up -------------------------------------------------------------------

    def resync_all(self) -> None:
        """Make every local connection re-read its mailbox from the database."""
        self._local.publish_to_all(RESYNC)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self._resync_s)
            self.resync_all()
