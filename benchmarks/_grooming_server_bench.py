"""Server-side grooming detection latency: a real `covey server` (safeguarded, SQLite), a
verified adult and a verified child (real AnonCreds proofs), real clients; the adult sends
the evaluation set's messages to the child, `--server-concurrency` at a time, and each
message's time from arrival (`safety_copies.server_ts_ms`) to scored (the detectors' read,
`safety_copy_reads.read_ms`, logged when the scan finished) is read from the database.
Target: p95 ≤ 1000 ms.

    python benchmarks/detection.py --only grooming_server [--server-messages 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "conversations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server-messages", type=int, default=1000)
    parser.add_argument("--server-concurrency", type=int, default=8)


def _texts(limit: int) -> list[str]:
    texts: list[str] = []
    for path in sorted(DATA.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.extend(m["text"] for m in json.loads(line)["messages"])
    return (texts * (limit // max(1, len(texts)) + 1))[:limit]


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(root: Path, n: int, concurrency: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.support.age import FAST_SCRYPT, PASSPHRASE, server_env
    from tests.support.safety import BandIssuer

    from covey.client import Client
    from covey.server.process import ServerProcess

    issuer = BandIssuer(root)
    database = root / "server" / "covey.db"
    env = {**server_env(issuer.registry), "COVEY_SAFETY_MODE": "safeguarded",
           "COVEY_RATE_SEND_PER_MIN": "100000000", "COVEY_RATE_SEND_BURST": "100000000"}
    server = ServerProcess(f"sqlite+aiosqlite:///{database}", root / "server",
                           log_path=root / "server.log", env=env)
    await asyncio.to_thread(server.start)
    clients = []
    try:
        async def person(handle: str, years: int) -> Client:
            store = root / f"{handle}.db"
            issuer.place_tails(store)
            client = await Client.register(server.url, handle, store, PASSPHRASE,
                                           scrypt_n=FAST_SCRYPT, wallet=issuer.wallet(years))
            clients.append(client)
            return client

        adult, child = await person("benchadult", 30), await person("benchkid", 12)
        await child.accept_contact(await adult.request_contact(child.user_id))
        texts = _texts(n)
        started = time.perf_counter()
        queue: asyncio.Queue[str] = asyncio.Queue()
        for text in texts:
            queue.put_nowait(text)

        async def sender() -> None:
            while not queue.empty():
                await adult.send_text(child.user_id, queue.get_nowait())

        await asyncio.gather(*(sender() for _ in range(concurrency)))
        for _ in range(n):
            await child.next_message(60)
        sent_s = time.perf_counter() - started

        def scanned() -> list[tuple[int, int]]:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
                return conn.execute(
                    "SELECT c.server_ts_ms, r.read_ms FROM safety_copy_reads r JOIN "
                    "safety_copies c ON c.id = r.copy_id WHERE r.reader = 'detectors'"
                ).fetchall()

        rows: list[tuple[int, int]] = []
        for _ in range(600):
            rows = await asyncio.to_thread(scanned)
            if len(rows) >= n:
                break
            await asyncio.sleep(0.1)
        latencies = [read - arrived for arrived, read in rows]
        return {"benchmark": "grooming_server_latency", "n": len(latencies),
                "concurrency": concurrency, "msgs_per_s": round(n / sent_s),
                "p50_ms": _percentile(latencies, 0.50), "p95_ms": _percentile(latencies, 0.95),
                "p99_ms": _percentile(latencies, 0.99), "max_ms": max(latencies),
                "target_p95_ms": 1000}
    finally:
        for client in clients:
            await client.close()
        await asyncio.to_thread(server.stop)


def run(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="covey-grooming-bench-") as tmp:
        yield asyncio.run(_measure(Path(tmp), args.server_messages, args.server_concurrency))
