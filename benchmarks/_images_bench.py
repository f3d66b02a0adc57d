"""Known-image benchmarks (issue 11): PDQ matching side by side with python-threatexchange's
`PDQIndex`, and PDQ hashing of 2-megapixel JPEGs, decode included, on one core.

Matching: the same random hashes plus planted near-duplicates (a banked hash with 1-31
bits flipped) and the same queries for both implementations, each size and
implementation in its own subprocess so resident memory is honest. Per query: one hash
(`p50_ms`, `p99_ms`) and, as a relay queries an image, eight hashes (`dihedral_*`)."""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

PLANTED = 100
RANDOM_QUERIES = 400
_SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000, "10M": 10_000_000}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("images")
    group.add_argument("--sizes", default="10k,100k,1M",
                       help="bank sizes to match against: any of 10k,100k,1M,10M")
    group.add_argument("--impls", default="covey,pdqindex",
                       help="covey (the default: flat), covey-flat, "
                            "covey-multihash, pdqindex")
    group.add_argument("--hash-images", type=int, default=60,
                       help="2-megapixel JPEGs to hash (0: skip hashing)")


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _dataset(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n random hashes, the queries (planted near-duplicates first) and each planted
    query's source position."""
    rng = np.random.default_rng(n)
    codes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    sources = rng.choice(n, PLANTED, replace=False)
    planted = np.empty((PLANTED, 32), dtype=np.uint8)
    for i, source in enumerate(sources):
        bits = np.unpackbits(codes[source])
        bits[rng.choice(256, int(rng.integers(1, 32)), replace=False)] ^= 1
        planted[i] = np.packbits(bits)
    queries = np.concatenate([planted, rng.integers(0, 256, size=(RANDOM_QUERIES, 32),
                                                    dtype=np.uint8)])
    return codes, queries, sources


class _Timer:
    """Wall and this thread's CPU time of one call: on a shared machine the CPU time is
    what the code costs, the wall time what a caller waited (preemption included)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __enter__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.thread_time()

    def __exit__(self, *exc: object) -> None:
        self.cpu.append(time.thread_time() - self._cpu)
        self.wall.append(time.perf_counter() - self._wall)

    def row(self, prefix: str) -> dict[str, float]:
        p50, p99 = _percentiles(self.wall)
        c50, c99 = _percentiles(self.cpu)
        return {f"{prefix}p50_ms": round(p50, 3), f"{prefix}p99_ms": round(p99, 3),
                f"{prefix}cpu_p50_ms": round(c50, 3), f"{prefix}cpu_p99_ms": round(c99, 3)}


def _percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.array(samples) * 1000
    return float(np.median(values)), float(np.percentile(values, 99))


def _worker(impl: str, n: int) -> dict[str, Any]:
    """Build one implementation over n hashes and time the queries (in a subprocess)."""
    import faiss

    faiss.omp_set_num_threads(1)
    codes, queries, sources = _dataset(n)
    base_rss = _rss_mb()
    rng = np.random.default_rng(7)
    extra = rng.integers(0, 256, size=(queries.shape[0], 7, 32), dtype=np.uint8)
    found = 0
    single, dihedral = _Timer(), _Timer()
    if impl.startswith("covey"):
        from covey.safety.images import PdqMatcher

        multihash_min = {"covey": None, "covey-flat": 10**12, "covey-multihash": 1}[impl]
        start = time.perf_counter()
        matcher = (PdqMatcher() if multihash_min is None
                   else PdqMatcher(multihash_min=multihash_min))
        matcher.add(np.arange(n, dtype=np.int64), codes)
        build_s = time.perf_counter() - start
        kind = matcher.kind
        del codes
        gc.collect()
        for i, query in enumerate(queries):
            with single:
                matches = matcher.search(query[None, :])
            if i < PLANTED and any(m.entry_id == sources[i] for m in matches):
                found += 1
            batch = np.concatenate([query[None, :], extra[i]])
            with dihedral:
                matcher.search(batch)
    else:
        from threatexchange.signal_type.pdq.pdq_index import PDQIndex

        hexes = [row.tobytes().hex() for row in codes]
        del codes
        start = time.perf_counter()
        index: Any = PDQIndex(zip(hexes, range(n), strict=True))
        build_s = time.perf_counter() - start
        kind = "multihash"
        del hexes
        gc.collect()
        for i, query in enumerate(queries):
            text = query.tobytes().hex()
            with single:
                matches = index.query(text)
            if i < PLANTED and any(m.metadata == sources[i] for m in matches):
                found += 1
            others = [row.tobytes().hex() for row in extra[i]]
            with dihedral:
                for q in (text, *others):
                    index.query(q)
    return {"benchmark": "pdq_match", "impl": "pdqindex" if impl == "pdqindex" else "covey",
            "index": kind, "hashes": n, **single.row(""), **dihedral.row("dihedral_"),
            "build_s": round(build_s, 2), "rss_mb": round(_rss_mb(), 1),
            "index_rss_mb": round(_rss_mb() - base_rss, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "planted": PLANTED, "planted_found": found, "queries": int(queries.shape[0])}


def _match_rows(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    for size in args.sizes.split(","):
        n = _SIZES[size.strip()]
        for impl in args.impls.split(","):
            result = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--match-worker",
                 impl.strip(), str(n)], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                yield {"benchmark": "pdq_match", "impl": impl, "hashes": n,
                       "error": result.stderr.strip().splitlines()[-1:]}
                continue
            yield json.loads(result.stdout.strip().splitlines()[-1])


def _hash_rows(count: int) -> Iterator[dict[str, Any]]:
    from PIL import Image, ImageDraw

    from covey.safety.images import hash_image, query_hashes

    width, height = 1732, 1155  # 2.0 megapixels
    images = []
    for seed in range(min(count, 12)):
        rng = np.random.default_rng(seed)
        image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
        draw = ImageDraw.Draw(image)
        for _ in range(30):
            x, y = int(rng.integers(width)), int(rng.integers(height))
            draw.ellipse((x, y, x + int(rng.integers(50, 600)), y + int(rng.integers(50, 400))),
                         fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=90)
        images.append(out.getvalue())
    for name, fn in (("hash", hash_image), ("dihedral", query_hashes)):
        fn(images[0])  # warm up
        start, cpu_start = time.perf_counter(), time.thread_time()
        for i in range(count):
            fn(images[i % len(images)])
        elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
        # images_per_s: per core of CPU time (one thread; wall time on a shared machine
        # counts other processes' turns too, wall_images_per_s).
        yield {"benchmark": "pdq_hash", "megapixels": round(width * height / 1e6, 2),
               "mode": name, "images": count, "images_per_s": round(count / cpu, 1),
               "wall_images_per_s": round(count / elapsed, 1),
               "ms_per_image": round(cpu / count * 1000, 2)}


def run(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    if getattr(args, "hash_images", 0):
        yield from _hash_rows(args.hash_images)
    yield from _match_rows(args)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--match-worker":
        print(json.dumps(_worker(sys.argv[2], int(sys.argv[3]))))
    else:
        parser = argparse.ArgumentParser(description=__doc__)
        add_arguments(parser)
        for row in run(parser.parse_args()):
            print(json.dumps(row), flush=True)
