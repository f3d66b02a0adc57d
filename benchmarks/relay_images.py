"""The extra latency a safeguarded image message gains from known-image matching in the
relay (issue 11), against real `covey server` processes with real clients.

Two servers in safeguarded mode, each on its own SQLite database: one with no hash bank
(the relay's check reads nothing), one with a bank of `--bank-hashes` random PDQ hashes
(none matches the images, so every message is delivered: the cost measured is that of
reading, decrypting, decoding, hashing eight ways and searching). Two unverified clients
per server (their conversation is safeguarded) send 2-megapixel JPEGs one at a time,
alternating between the servers so both see the same machine load. Latency is from the
sender's `send_attachment` call (encrypt, upload, send) to the receiver's delivery.

    python benchmarks/relay_images.py [--n 40] [--bank-hashes 100000]

JSON lines: `{"benchmark": "relay_image", "bank_hashes", "images", "megapixels", "p50_ms",
"p99_ms", "server_cpu_ms_per_msg"}` per server, then `{"benchmark":
"relay_image_match_extra", "bank_hashes", "extra_p50_ms", "extra_p99_ms",
"extra_server_cpu_ms_per_msg"}`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from covey.client import Client
from covey.server.process import ServerProcess
from covey.server.storage import Repository, create_engine, upgrade_to_head
from covey.server.storage.banks import BankStorage, NewEntry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relay import cpu_seconds

WIDTH, HEIGHT = 1732, 1155  # 2.0 megapixels


def _jpeg(seed: int) -> bytes:
    """A generated scene (gradient and shapes), never a photo of anyone."""
    rng = np.random.default_rng(seed)
    image = Image.linear_gradient("L").resize((WIDTH, HEIGHT)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(30):
        x, y = int(rng.integers(WIDTH)), int(rng.integers(HEIGHT))
        draw.ellipse((x, y, x + int(rng.integers(50, 600)), y + int(rng.integers(50, 400))),
                     fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


async def _fill_bank(database_url: str, hashes: int) -> None:
    engine = create_engine(database_url)
    await upgrade_to_head(engine)
    repo = Repository(engine)
    repo.start()
    try:
        banks = BankStorage(repo)
        await banks.create_bank("bench", int(time.time() * 1000))
        rng = np.random.default_rng(11)
        for start in range(0, hashes, 5000):
            codes = rng.integers(0, 256, (min(5000, hashes - start), 32), dtype=np.uint8)
            await banks.add_entries("bench", [NewEntry(bytes(c), {}, "bench") for c in codes],
                                    int(time.time() * 1000))
    finally:
        await repo.close()


class _Pair:
    """Two unverified clients on one server, and the server's CPU counter."""

    def __init__(self, server: ServerProcess, bank_hashes: int) -> None:
        self.server = server
        self.bank_hashes = bank_hashes
        self.latencies: list[float] = []
        self.cpu_s = 0.0

    async def open(self, root: Path) -> None:
        url = self.server.url
        self.alice = await Client.register(url, "imga" + secrets.token_hex(3),
                                           root / "a.db", "pw", scrypt_n=2**10)
        self.bob = await Client.register(url, "imgb" + secrets.token_hex(3),
                                         root / "b.db", "pw", scrypt_n=2**10)
        await self.alice.send_text(self.bob.user_id, "warm-up")
        await self.bob.next_message(60)

    async def send(self, image: bytes) -> None:
        pid = None if self.server.proc is None else self.server.proc.pid
        cpu0 = cpu_seconds(pid)
        start = time.perf_counter()
        await self.alice.send_attachment(self.bob.user_id, image, name="bench.jpg")
        await self.bob.next_message(60)
        self.latencies.append(time.perf_counter() - start)
        cpu1 = cpu_seconds(pid)
        if cpu0 is not None and cpu1 is not None:
            self.cpu_s += cpu1 - cpu0

    async def close(self) -> None:
        await self.alice.close()
        await self.bob.close()

    def row(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {"benchmark": "relay_image", "bank_hashes": self.bank_hashes,
                "images": len(ordered), "megapixels": round(WIDTH * HEIGHT / 1e6, 2),
                "p50_ms": round(statistics.median(ordered) * 1000, 2),
                "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 2),
                "server_cpu_ms_per_msg": round(self.cpu_s / len(ordered) * 1000, 2)}


async def _run(pairs: list[_Pair], root: Path, n: int) -> None:
    for i, pair in enumerate(pairs):
        directory = root / f"clients-{i}"
        directory.mkdir()
        await pair.open(directory)
    images = [_jpeg(seed) for seed in range(8)]
    try:
        for pair in pairs:  # one unmeasured image each: first decode, index warm-up
            await pair.send(images[0])
            pair.latencies.clear()
            pair.cpu_s = 0.0
        for i in range(n):
            for pair in (pairs if i % 2 == 0 else pairs[::-1]):
                await pair.send(images[i % len(images)])
    finally:
        for pair in pairs:
            await pair.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="images per server")
    parser.add_argument("--bank-hashes", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="covey-bench-img-") as tmp:
        root = Path(tmp)
        env = {"COVEY_RATE_SEND_PER_MIN": "100000000", "COVEY_RATE_SEND_BURST": "100000000",
               "COVEY_RATE_BLOB_PER_MIN": "100000000", "COVEY_RATE_BLOB_BURST": "100000000",
               "COVEY_SAFETY_MODE": "safeguarded", "OMP_NUM_THREADS": "1"}
        pairs: list[_Pair] = []
        servers: list[ServerProcess] = []
        try:
            for name, hashes in (("none", 0), ("bank", args.bank_hashes)):
                url = f"sqlite+aiosqlite:///{root}/{name}.db"
                if hashes:
                    asyncio.run(_fill_bank(url, hashes))
                server = ServerProcess(url, root / f"data-{name}", env=env).start(timeout=120)
                servers.append(server)
                pairs.append(_Pair(server, hashes))
            asyncio.run(_run(pairs, root, args.n))
        finally:
            for server in servers:
                server.stop()
    rows = [pair.row() for pair in pairs]
    for row in rows:
        print(json.dumps(row), flush=True)
    base, banked = rows
    print(json.dumps({
        "benchmark": "relay_image_match_extra", "bank_hashes": banked["bank_hashes"],
        "extra_p50_ms": round(banked["p50_ms"] - base["p50_ms"], 2),
        "extra_p99_ms": round(banked["p99_ms"] - base["p99_ms"], 2),
        "extra_server_cpu_ms_per_msg": round(banked["server_cpu_ms_per_msg"]
                                             - base["server_cpu_ms_per_msg"], 2)}),
          flush=True)


if __name__ == "__main__":
    main()
