"""Relay throughput and latency over the WebSocket, against a real `covey server` process.

Starts the server on a temporary SQLite database (durable: WAL + synchronous=FULL),
registers two devices with real signed keys, then sends N opaque 300-byte envelopes from
one to the other at several concurrencies (messages in flight between send and receipt
by the receiver). Prints one JSON line per run.

    python benchmarks/relay.py [--n 3000] [--concurrency 1,16,64] [--database-url URL]
                               [--safety-mode e2ee-only|safeguarded]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import vodozemac
import websockets

from covey.client import Client
from covey.protocol.ids import dm_conversation_id, new_message_id
from covey.protocol.wire import device_signing_bytes, login_signing_bytes
from covey.server.process import ServerProcess

try:
    from orjson import loads
except ImportError:  # pragma: no cover - orjson is optional
    from json import loads


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


class Device:
    def __init__(self, base_url: str, user_id: str) -> None:
        self.base_url = base_url
        self.user_id = user_id
        self.device_id = "D" + secrets.token_hex(6)
        self.account = vodozemac.Account()
        self.token = ""

    def sign(self, data: bytes) -> str:
        return str(self.account.sign(data).to_base64())

    def register_and_login(self) -> None:
        ik = self.account.curve25519_key.to_base64()
        sk = self.account.ed25519_key.to_base64()
        keys = {"user_id": self.user_id, "device_id": self.device_id, "identity_key": ik,
                "signing_key": sk,
                "signature": self.sign(device_signing_bytes(self.user_id, self.device_id,
                                                            ik, sk))}
        with httpx.Client(base_url=self.base_url, timeout=30) as c:
            c.post("/v1/accounts", json={"device": keys}).raise_for_status()
            ch = c.post("/v1/auth/challenge", json={"user_id": self.user_id,
                                                    "device_id": self.device_id})
            ch.raise_for_status()
            sig = self.sign(login_signing_bytes(self.user_id, self.device_id,
                                                ch.json()["challenge"]))
            tok = c.post("/v1/auth/token", json={"challenge_id": ch.json()["challenge_id"],
                                                 "signature": sig})
            tok.raise_for_status()
            self.token = tok.json()["token"]


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (Linux), to see where the time goes."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(ws_url: str, sender: Device, receiver: Device, n: int,
              concurrency: int) -> dict[str, Any]:
    conversation = dm_conversation_id(sender.user_id, receiver.user_id)
    body = b64(secrets.token_bytes(300))
    commitment = b64(secrets.token_bytes(32))
    # The load generator shares the machine with the server: build each frame from a
    # template and parse with orjson when available, so it takes as little CPU as it can.
    template = json.dumps({"type": "send", "envelope": {
        "message_id": "@@MID@@", "conversation_id": conversation, "commitment": commitment,
        "recipients": [{"user_id": receiver.user_id, "device_id": receiver.device_id,
                        "olm_type": 1, "body": body}]}})
    head, tail = template.split("@@MID@@")
    started: dict[str, float] = {}
    latencies: list[float] = []
    slots = asyncio.Semaphore(concurrency)
    done = asyncio.Event()
    receipts = 0
    all_receipts = asyncio.Event()
    errors: list[Any] = []

    async with websockets.connect(f"{ws_url}/v1/ws", max_size=2**24,
                                  additional_headers={"Authorization": f"Bearer {sender.token}"}
                                  ) as tx, \
            websockets.connect(f"{ws_url}/v1/ws", max_size=2**24,
                               additional_headers={"Authorization":
                                                   f"Bearer {receiver.token}"}) as rx:

        async def receive() -> None:
            pending_acks: list[int] = []
            received = 0
            while received < n:
                frame = loads(await rx.recv())
                if frame["type"] != "delivery":
                    continue
                d = frame["delivery"]
                t0 = started.pop(d["message_id"], None)
                if t0 is None:
                    continue
                latencies.append(time.perf_counter() - t0)
                received += 1
                slots.release()
                pending_acks.append(d["seq"])
                if len(pending_acks) >= 64 or received == n:
                    await rx.send(json.dumps({"type": "ack", "seqs": pending_acks}))
                    pending_acks = []
            done.set()

        async def read_receipts() -> None:
            nonlocal receipts
            async for raw in tx:
                frame = loads(raw)
                if frame["type"] == "sent":
                    receipts += 1
                    if receipts >= n:
                        all_receipts.set()
                elif frame["type"] == "error":
                    errors.append(frame)
                    all_receipts.set()

        receiver_task = asyncio.create_task(receive())
        receipts_task = asyncio.create_task(read_receipts())
        t_start = time.perf_counter()
        for _ in range(n):
            await slots.acquire()
            mid = new_message_id()
            started[mid] = time.perf_counter()
            await tx.send(head + mid + tail)
        await asyncio.wait_for(done.wait(), timeout=120)
        elapsed = time.perf_counter() - t_start
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_receipts.wait(), timeout=10)
        receipts_task.cancel()
        await receiver_task
    if errors:
        raise SystemExit(f"server errors: {errors[:3]}")
    latencies.sort()
    return {
        "benchmark": "relay_ws_dm_300B",
        "concurrency": concurrency,
        "n": n,
        "msgs_per_s": round(n / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
                        3),
        "receipts": receipts,
    }


async def run_e2e(base_url: str, root: Path, n: int, concurrency: int) -> dict[str, Any]:
    """Real clients, real sessions: encrypt (Olm) -> relay -> decrypt and open the franking
    commitment, `concurrency` messages in flight."""
    alice = await Client.register(base_url, "e2ea" + secrets.token_hex(3), root / "a.db", "pw",
                                  scrypt_n=2**10)
    bob = await Client.register(base_url, "e2eb" + secrets.token_hex(3), root / "b.db", "pw",
                                scrypt_n=2**10)
    try:
        await alice.send_text(bob.user_id, "warm-up")
        await bob.next_message(30)
        sent_at: dict[str, float] = {}
        latencies: list[float] = []
        slots = asyncio.Semaphore(concurrency)
        done = asyncio.Event()

        async def receive() -> None:
            async for message in bob.messages():
                latencies.append(time.perf_counter() - sent_at[message.text])
                slots.release()
                if len(latencies) == n:
                    done.set()
                    return

        receiver = asyncio.create_task(receive())
        start = time.perf_counter()
        for i in range(n):
            await slots.acquire()
            text = f"message {i} " + "x" * 200
            sent_at[text] = time.perf_counter()
            await alice.send_text(bob.user_id, text)
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - start
        receiver.cancel()
        latencies.sort()
        return {
            "benchmark": "e2e",
            "concurrency": concurrency,
            "n": n,
            "msgs_per_s": round(n / elapsed, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 3),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 3),
        }
    finally:
        await alice.close()
        await bob.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="messages per run")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--database-url", default=None,
                        help="default: a temporary SQLite file")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--server-url", default=None,
                        help="use this running server (with high send rate limits) instead")
    parser.add_argument("--safety-mode", default="e2ee-only",
                        choices=["e2ee-only", "safeguarded", "on-device"],
                        help="the server's policy mode. The bench users are unverified, so "
                        "e2ee-only relays them as a 16+ pair is relayed in every mode "
                        "(opaque envelopes need it); safeguarded makes the end-to-end run "
                        "seal, check and store a safety copy per message")
    parser.add_argument("--e2e-n", type=int, default=500,
                        help="messages for the end-to-end run with real clients (0: skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="covey-bench-") as tmp:
        db = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        server = None
        if not args.server_url:
            server = ServerProcess(db, Path(tmp) / "data", env={
                "COVEY_RATE_SEND_PER_MIN": "100000000", "COVEY_RATE_SEND_BURST": "100000000",
                "COVEY_ONE_TIME_KEYS_LOW": "0", "COVEY_SAFETY_MODE": args.safety_mode}).start()
        try:
            base = args.server_url or server.url  # type: ignore[union-attr]
            sender = Device(base, "bench" + secrets.token_hex(3))
            receiver = Device(base, "bench" + secrets.token_hex(3))
            sender.register_and_login()
            receiver.register_and_login()
            ws_url = "ws" + base[len("http"):]
            opaque = args.safety_mode == "e2ee-only"  # random bytes can't carry a copy
            if args.warmup and opaque:
                asyncio.run(run(ws_url, sender, receiver, args.warmup, 16))
            pid = None if server is None or server.proc is None else server.proc.pid
            for c in (int(x) for x in args.concurrency.split(",") if opaque):
                cpu0 = cpu_seconds(pid)
                result = asyncio.run(run(ws_url, sender, receiver, args.n, c))
                cpu1 = cpu_seconds(pid)
                if cpu0 is not None and cpu1 is not None:
                    result["server_cpu_us_per_msg"] = round((cpu1 - cpu0) / args.n * 1e6, 1)
                print(json.dumps(result), flush=True)
            if args.e2e_n:
                for c in (1, 16):
                    with tempfile.TemporaryDirectory(prefix="covey-e2e-") as stores:
                        result = asyncio.run(run_e2e(base, Path(stores), args.e2e_n, c))
                    print(json.dumps({**result, "safety_mode": args.safety_mode}), flush=True)
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
