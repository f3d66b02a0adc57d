"""A cluster behind Debian's nginx (the shipped deploy/nginx/covey.conf), and its faults:
a node SIGKILLed during a burst of sends, NATS restarted during traffic."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.support.cluster import (
    CLUSTER_ENV,
    Cluster,
    Nginx,
    PrivateNats,
    TcpProxy,
    running_cluster,
)
from tests.support.raw import RawDevice, dm_envelope, register
from tests.support.server import CoveyServer, postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@dataclass
class Peer:
    """A raw device on a WebSocket that reconnects (through nginx) whenever it drops,
    acks what it receives and resends what was not acknowledged, like the SDK."""

    device: RawDevice
    ws_url: str
    received: list[str] = field(default_factory=list)  # message ids, duplicates kept
    acked: set[str] = field(default_factory=set)  # sends the server acknowledged
    unacked: dict[str, dict[str, Any]] = field(default_factory=dict)
    connects: int = 0
    ws: Any = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    on_error: Any = None  # error frames go here (by default they fail the test)

    async def run(self) -> None:
        while True:
            try:
                async with websockets.connect(
                        f"{self.ws_url}/v1/ws", open_timeout=10, max_size=2**24,
                        additional_headers=self.device.headers) as ws:
                    self.ws = ws
                    self.connects += 1
                    self.connected.set()
                    for env in list(self.unacked.values()):  # resend after a reconnect
                        await ws.send(json.dumps({"type": "send", "envelope": env}))
                    async for raw in ws:
                        frame = json.loads(raw)
                        if frame["type"] == "delivery":
                            self.received.append(frame["delivery"]["message_id"])
                            await ws.send(json.dumps(
                                {"type": "ack", "seqs": [frame["delivery"]["seq"]]}))
                        elif frame["type"] == "sent":
                            mid = frame["receipt"]["message_id"]
                            self.unacked.pop(mid, None)
                            self.acked.add(mid)
                        elif frame["type"] == "error":
                            if self.on_error is None:
                                raise AssertionError(f"error frame: {frame}")
                            self.on_error(frame)
            except (OSError, websockets.WebSocketException, TimeoutError):
                pass
            self.connected.clear()
            self.ws = None
            await asyncio.sleep(0.2)

    async def send(self, env: dict[str, Any]) -> None:
        self.unacked[env["message_id"]] = env
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(websockets.WebSocketException, OSError):
                await ws.send(json.dumps({"type": "send", "envelope": env}))


async def _until(check: Any, within_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def _burst(pairs: list[tuple[Peer, Peer]], per_pair: int, *,
                 midway: Any) -> None:
    """Each sender sends `per_pair` DMs to its recipient; `midway()` runs halfway."""
    for i in range(per_pair):
        for sender, recipient in pairs:
            await sender.send(dm_envelope(sender.device, [recipient.device],
                                          peer=recipient.device.user_id))
        if i == per_pair // 2:
            await midway()
        await asyncio.sleep(0.005)


def _check_exactly_once(pairs: list[tuple[Peer, Peer]]) -> None:
    for sender, recipient in pairs:
        assert not sender.unacked
        # Every acknowledged message arrived; nothing arrived that was not sent; after
        # dedupe by message id, each exactly once.
        assert set(recipient.received) == sender.acked


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[tuple[Cluster, Nginx]]:
    with running_cluster(tmp_path, n=2) as cluster:
        nginx = Nginx(tmp_path / "nginx", cluster.nodes).start()
        try:
            yield cluster, nginx
        finally:
            nginx.stop()


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[tuple[Cluster, PrivateNats]]:
    nats = PrivateNats(tmp_path / "nats").start()
    try:
        with running_cluster(tmp_path, n=2, nats_url=nats.url,
                             env={"COVEY_CLUSTER_RESYNC_S": "600"}) as cluster:
            yield cluster, nats
    finally:
        nats.stop()


@pytest.mark.timeout(300)
async def test_nginx_in_front_of_two_nodes_survives_a_node_killed_mid_burst(
        behind_nginx: tuple[Cluster, Nginx]) -> None:
    cluster, nginx = behind_nginx
    a, b = cluster.nodes
    # HTTP through nginx reaches both nodes (least_conn spreads keep-alive-less
    # requests round the ring).
    seen = await asyncio.to_thread(lambda: {
        httpx.get(f"{nginx.url}/readyz", timeout=10).json()["node_id"] for _ in range(6)})
    assert seen == await asyncio.to_thread(lambda: {cluster.node_id(a), cluster.node_id(b)})
    devices = await asyncio.to_thread(
        lambda: [register(nginx.url, "kill") for _ in range(8)])
    peers = [Peer(d, nginx.ws_url) for d in devices]
    tasks = [asyncio.create_task(p.run()) for p in peers]
    try:
        for p in peers:
            await asyncio.wait_for(p.connected.wait(), 30)
        on_a = await asyncio.to_thread(_metric, a.url, "covey_websocket_connections")
        assert 0 < on_a < len(peers), "nginx did not spread the sockets"
        pairs = [(peers[i], peers[i + 4]) for i in range(4)]

        async def kill_a() -> None:
            await asyncio.to_thread(a.kill)

        await _burst(pairs, 60, midway=kill_a)
        await _until(lambda: all(not s.unacked for s, _ in pairs), 90,
                     "every send to be acknowledged")
        await _until(lambda: all(set(r.received) >= s.acked for s, r in pairs), 60,
                     "every acknowledged message to be delivered")
        await asyncio.sleep(0.5)  # anything extra would arrive now
        _check_exactly_once(pairs)
        # The dead node's devices came back through nginx, to the other node.
        assert any(p.connects > 1 for p in peers)
        assert await asyncio.to_thread(
            _metric, b.url, "covey_websocket_connections") == len(peers)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.timeout(300)
async def test_restarting_nats_during_traffic_loses_nothing(
        nats_cluster: tuple[Cluster, PrivateNats]) -> None:
    cluster, nats = nats_cluster
    a, b = cluster.nodes
    sender_dev, recipient_dev = await asyncio.to_thread(
        lambda: (register(a.url, "ns"), register(b.url, "nr")))
    sender = Peer(sender_dev, a.ws_url)
    recipient = Peer(recipient_dev, b.ws_url)
    tasks = [asyncio.create_task(sender.run()), asyncio.create_task(recipient.run())]
    try:
        await asyncio.wait_for(sender.connected.wait(), 30)
        await asyncio.wait_for(recipient.connected.wait(), 30)

        async def restart_nats() -> None:
            await asyncio.to_thread(nats.stop)
            await asyncio.sleep(1.0)  # sends keep committing meanwhile
            await asyncio.to_thread(nats.start)

        await _burst([(sender, recipient)], 80, midway=restart_nats)
        await _until(lambda: not sender.unacked, 60, "every send acknowledged")
        # NATS came back: the nodes reconnect and every connection re-reads its
        # mailbox, so what was committed while NATS was down arrives too (long
        # before the 600 s periodic resync).
        await _until(lambda: set(recipient.received) >= sender.acked, 30,
                     "every acknowledged message after NATS restarted")
        _check_exactly_once([(sender, recipient)])
        assert recipient.connects == 1  # the WebSocket never dropped
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def node_behind_proxy(tmp_path: Path) -> Iterator[tuple[CoveyServer, TcpProxy]]:
    from sqlalchemy.engine import make_url

    with postgres_database() as url:
        parsed = make_url(url)
        proxy = TcpProxy(parsed.port or 5432).start()
        try:
            proxied = parsed.set(port=proxy.port).render_as_string(hide_password=False)
            node = CoveyServer(proxied, tmp_path / "data", env=CLUSTER_ENV)
            with node:
                yield node, proxy
        finally:
            proxy.close()


@pytest.mark.timeout(300)
async def test_postgresql_briefly_unreachable(
        node_behind_proxy: tuple[CoveyServer, TcpProxy]) -> None:
    node, proxy = node_behind_proxy
    sender_dev, recipient_dev = await asyncio.to_thread(
        lambda: (register(node.url, "ps"), register(node.url, "pr")))
    sender = Peer(sender_dev, node.ws_url)
    recipient = Peer(recipient_dev, node.ws_url)
    tasks = [asyncio.create_task(sender.run()), asyncio.create_task(recipient.run())]
    errors: list[dict[str, Any]] = []
    sender.on_error = errors.append
    try:
        await asyncio.wait_for(sender.connected.wait(), 30)
        await asyncio.wait_for(recipient.connected.wait(), 30)
        await _burst([(sender, recipient)], 10, midway=_nothing)
        await _until(lambda: set(recipient.received) >= sender.acked
                     and not sender.unacked, 30, "the first messages")
        await asyncio.to_thread(proxy.cut)
        # Sends now get a clear 503 (an error frame, and the HTTP answer), not a 500.
        env = dm_envelope(sender_dev, [recipient_dev], peer=recipient_dev.user_id)
        r = await asyncio.to_thread(lambda: httpx.post(
            f"{node.url}/v1/messages", json=env, headers=sender_dev.headers, timeout=30))
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "storage_unavailable"
        ready = await asyncio.to_thread(lambda: httpx.get(f"{node.url}/readyz", timeout=30))
        assert ready.status_code == 503
        assert ready.json()["reason"] == "database unreachable"
        await _burst([(sender, recipient)], 5, midway=_nothing)
        await _until(lambda: any(e["error"]["code"] == "storage_unavailable"
                                 for e in errors), 30, "a storage_unavailable error frame")
        assert all(e["error"]["code"] == "storage_unavailable" for e in errors), errors
        await asyncio.sleep(1.0)
        await asyncio.to_thread(proxy.restore)
        await _until(lambda: httpx.get(f"{node.url}/readyz", timeout=10).status_code == 200,
                     30, "/readyz to recover")
        # The client resends what was refused (same message ids): all of it arrives, and
        # everything acknowledged before the outage is still there.
        for mid in list(sender.unacked):
            await sender.send(sender.unacked[mid])
        await _until(lambda: not sender.unacked, 60, "the resends to be acknowledged")
        await _until(lambda: set(recipient.received) >= sender.acked, 60,
                     "every acknowledged message")
        _check_exactly_once([(sender, recipient)])
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _nothing() -> None:
    return None
