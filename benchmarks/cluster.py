"""Cluster throughput and latency: `covey server` nodes on PostgreSQL and NATS JetStream.

Sends the same opaque 300-byte envelopes as benchmarks/relay.py over WebSockets, with
`concurrency` messages in flight between send and receipt by the receiver, in four runs:

- cluster_single: one PostgreSQL node without NATS (the baseline);
- cluster_cross_node: two nodes, the sender on one and the receiver on the other;
- cluster_nginx: two nodes behind Debian's nginx running deploy/nginx/covey.conf;
- cluster_node_kill: as cluster_nginx, and the node of some sockets is SIGKILLed halfway;
  both devices reconnect through nginx, the sender resends what was not acknowledged, and
  the receiver counts messages lost and duplicates (before its dedupe).

Each run gets a fresh database. Prints one JSON line per run with exactly the keys
benchmark, nodes, concurrency, n, msgs_per_s, p50_ms, p99_ms, lost, duplicates: `lost`
counts acknowledged messages never delivered, `duplicates` messages delivered under two
seqs (stored twice); a redelivery of the same seq after a reconnect is at-least-once
delivery, which the client's dedupe absorbs, and is not counted.

    python benchmarks/cluster.py [--n 2000] [--concurrency 16] [--nats-url URL]
                                 [--postgres-url URL] [--runs single,cross,nginx,kill]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relay import Device, b64

from covey.protocol.ids import dm_conversation_id, new_message_id
from covey.server.process import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[1]
ENV = {"COVEY_RATE_SEND_PER_MIN": "100000000", "COVEY_RATE_SEND_BURST": "100000000",
       "COVEY_ONE_TIME_KEYS_LOW": "0", "COVEY_SAFETY_MODE": "e2ee-only"}


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"covey_bench_{secrets.token_hex(4)}"
    plain = make_url(admin_url).set(drivername="postgresql").render_as_string(
        hide_password=False)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(plain)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def nodes(root: Path, database_url: str, count: int, nats_url: str | None
          ) -> Iterator[list[ServerProcess]]:
    env = dict(ENV)
    if nats_url is not None:
        env.update(COVEY_NATS_URL=nats_url, COVEY_CLUSTER_NAME="b" + secrets.token_hex(4))
    started = []
    try:
        for i in range(count):
            started.append(ServerProcess(database_url, root / "data", env=env,
                                         log_path=root / f"node{i}.log").start(timeout=90))
        yield started
    finally:
        for node in started:
            node.stop()


@contextlib.contextmanager
def nginx(root: Path, upstream: list[ServerProcess]) -> Iterator[str]:
    """deploy/nginx/covey.conf on a free port in front of `upstream`; yields its ws URL."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    site = (REPO / "deploy" / "nginx" / "covey.conf").read_text()
    site = re.sub(r"(?m)^    server 127\.0\.0\.1:847\d[^\n]*\n", "", site)
    site = site.replace("    least_conn;\n", "    least_conn;\n" + "".join(
        f"    server 127.0.0.1:{n.port} max_fails=1 fail_timeout=5s;\n" for n in upstream))
    site = site.replace("listen 8470;", f"listen 127.0.0.1:{port};")
    (root / "temp").mkdir(parents=True, exist_ok=True)
    (root / "covey.conf").write_text(site)
    (root / "nginx.conf").write_text(
        f"worker_processes 1; pid {root}/nginx.pid; error_log {root}/error.log warn;\n"
        f"events {{ worker_connections 1024; }}\n"
        f"http {{ access_log off; client_body_temp_path {root}/temp/b; proxy_temp_path "
        f"{root}/temp/p; fastcgi_temp_path {root}/temp/f; uwsgi_temp_path {root}/temp/u; "
        f"scgi_temp_path {root}/temp/s; include {root}/covey.conf; }}\n")
    proc = subprocess.Popen([binary, "-p", str(root), "-c", str(root / "nginx.conf"),
                             "-g", "daemon off;"])
    try:
        for _ in range(200):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(10)


def _http(ws_url: str) -> str:
    return "http" + ws_url[len("ws"):]


class _Run:
    """One sender, one receiver, `concurrency` in flight; both reconnect when dropped."""

    def __init__(self, tx_url: str, rx_url: str, sender: Device, receiver: Device,
                 n: int, concurrency: int) -> None:
        self.tx_url, self.rx_url = tx_url, rx_url
        self.sender, self.receiver = sender, receiver
        self.n = n
        self.slots = asyncio.Semaphore(concurrency)
        conversation = dm_conversation_id(sender.user_id, receiver.user_id)
        template = json.dumps({"type": "send", "envelope": {
            "message_id": "@@MID@@", "conversation_id": conversation,
            "commitment": b64(secrets.token_bytes(32)),
            "recipients": [{"user_id": receiver.user_id, "device_id": receiver.device_id,
                            "olm_type": 1, "body": b64(secrets.token_bytes(300))}]}})
        self.head, self.tail = template.split("@@MID@@")
        self.started: dict[str, float] = {}
        self.latencies: list[float] = []
        self.received: set[str] = set()
        self.duplicates = 0
        self.sending_done = False
        self.done = asyncio.Event()
        self.seq_of: dict[str, int] = {}
        self.to_ack: list[int] = []
        self.rx: Any = None
        self.acked: set[str] = set()
        self.unacked: set[str] = set()
        self.tx: Any = None
        self.tx_ready = asyncio.Event()
        self.rx_ready = asyncio.Event()

    def _check_done(self) -> None:
        if self.sending_done and not self.unacked and self.acked <= self.received:
            self.done.set()

    def frame(self, mid: str) -> str:
        return self.head + mid + self.tail

    async def _socket(self, url: str, device: Device, ready: asyncio.Event,
                      on_open: Any, on_frame: Any) -> None:
        while True:
            try:
                async with websockets.connect(
                        f"{url}/v1/ws", max_size=2**24, open_timeout=10,
                        additional_headers={"Authorization": f"Bearer {device.token}"}) as ws:
                    await on_open(ws)
                    ready.set()
                    async for raw in ws:
                        await on_frame(ws, json.loads(raw))
            except (OSError, websockets.WebSocketException, TimeoutError):
                pass
            ready.clear()
            await asyncio.sleep(0.1)

    async def _tx_open(self, ws: Any) -> None:
        self.tx = ws
        for mid in list(self.unacked):  # resend what the dead node never acknowledged
            await ws.send(self.frame(mid))

    async def _tx_frame(self, _ws: Any, frame: dict[str, Any]) -> None:
        if frame["type"] == "sent":
            mid = frame["receipt"]["message_id"]
            self.unacked.discard(mid)
            self.acked.add(mid)
            self._check_done()
        elif frame["type"] == "error":
            raise SystemExit(f"server error: {frame}")

    async def _rx_open(self, ws: Any) -> None:
        self.rx = ws

    async def _flush_acks(self, ws: Any) -> None:
        seqs, self.to_ack = self.to_ack, []
        if seqs:
            with contextlib.suppress(websockets.WebSocketException, OSError):
                await ws.send(json.dumps({"type": "ack", "seqs": seqs}))

    async def _ack_loop(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            if self.rx is not None:
                await self._flush_acks(self.rx)

    async def _rx_frame(self, ws: Any, frame: dict[str, Any]) -> None:
        if frame["type"] != "delivery":
            return
        d = frame["delivery"]
        self.to_ack.append(d["seq"])
        if len(self.to_ack) >= 32:
            await self._flush_acks(ws)
        mid = d["message_id"]
        seq = self.seq_of.setdefault(mid, d["seq"])
        if mid in self.received:
            # The same seq again is at-least-once redelivery (after a reconnect), which
            # the client's dedupe absorbs; another seq would be a second stored copy.
            if seq != d["seq"]:
                self.duplicates += 1
            return
        self.received.add(mid)
        t0 = self.started.pop(mid, None)
        if t0 is not None:
            self.latencies.append(time.perf_counter() - t0)
            self.slots.release()
        self._check_done()

    async def go(self, kill_at: int | None = None, kill: Any = None) -> dict[str, Any]:
        tasks = [asyncio.create_task(self._socket(self.tx_url, self.sender, self.tx_ready,
                                                  self._tx_open, self._tx_frame)),
                 asyncio.create_task(self._socket(self.rx_url, self.receiver, self.rx_ready,
                                                  self._rx_open, self._rx_frame)),
                 asyncio.create_task(self._ack_loop())]
        try:
            await asyncio.wait_for(self.tx_ready.wait(), 30)
            await asyncio.wait_for(self.rx_ready.wait(), 30)
            t_start = time.perf_counter()
            for i in range(self.n):
                if i == kill_at and kill is not None:
                    await asyncio.to_thread(kill)
                # A window lost with a dead node: go on after a while, the resend covers it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.slots.acquire(), 5)
                mid = new_message_id()
                self.started[mid] = time.perf_counter()
                self.unacked.add(mid)
                with contextlib.suppress(websockets.WebSocketException, OSError,
                                         AttributeError):
                    await self.tx.send(self.frame(mid))
            self.sending_done = True
            self._check_done()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), 120)
            elapsed = time.perf_counter() - t_start
            await asyncio.sleep(0.3 if kill is None else 1.0)  # late duplicates
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        lat = sorted(self.latencies)
        return {"msgs_per_s": round(len(self.received) / elapsed, 1),
                "p50_ms": round(statistics.median(lat) * 1000, 3),
                "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 3),
                "lost": len(self.acked - self.received) + len(self.unacked),
                "duplicates": self.duplicates}


def _devices(http_url: str) -> tuple[Device, Device]:
    sender = Device(http_url, "cb" + secrets.token_hex(4))
    receiver = Device(http_url, "cb" + secrets.token_hex(4))
    sender.register_and_login()
    receiver.register_and_login()
    return sender, receiver


def measure(benchmark: str, count: int, tx: str, rx: str, n: int, concurrency: int,
            warmup: int, kill: Any = None) -> dict[str, Any]:
    sender, receiver = _devices(_http(tx))
    if warmup:
        asyncio.run(_Run(tx, rx, sender, receiver, warmup, concurrency).go())
    result = asyncio.run(_Run(tx, rx, sender, receiver, n, concurrency).go(
        kill_at=n // 2 if kill is not None else None, kill=kill))
    return {"benchmark": benchmark, "nodes": count, "concurrency": concurrency, "n": n,
            **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="messages per run")
    parser.add_argument("--concurrency", default="16")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--nats-url", default=os.environ.get("COVEY_TEST_NATS_URL",
                                                             "nats://127.0.0.1:4222"))
    parser.add_argument("--postgres-url", default=os.environ.get(
        "COVEY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
        help="a server where databases may be created (one per run, dropped after)")
    parser.add_argument("--runs", default="single,cross,nginx,kill")
    args = parser.parse_args()
    runs = args.runs.split(",")
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        for run in runs:
            with tempfile.TemporaryDirectory(prefix="covey-cluster-bench-") as tmp, \
                    fresh_database(args.postgres_url) as db:
                root = Path(tmp)
                if run == "single":
                    with nodes(root, db, 1, None) as [a]:
                        line = measure("cluster_single", 1, a.ws_url, a.ws_url, args.n,
                                       concurrency, args.warmup)
                elif run == "cross":
                    with nodes(root, db, 2, args.nats_url) as [a, b]:
                        line = measure("cluster_cross_node", 2, a.ws_url, b.ws_url, args.n,
                                       concurrency, args.warmup)
                elif run == "nginx":
                    with nodes(root, db, 2, args.nats_url) as both, \
                            nginx(root / "nginx", both) as url:
                        line = measure("cluster_nginx", 2, url, url, args.n, concurrency,
                                       args.warmup)
                elif run == "kill":
                    with nodes(root, db, 2, args.nats_url) as both, \
                            nginx(root / "nginx", both) as url:
                        line = measure("cluster_node_kill", 2, url, url, args.n,
                                       concurrency, 0, kill=both[0].kill)
                else:
                    raise SystemExit(f"unknown run {run!r}: single, cross, nginx or kill")
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
