"""Reporting benchmark: evidence verification throughput and the cost of a law-enforcement
bundle. Evidence is generated in memory with real franking (`FrankedConversation`: sender
commitments, per-recipient server tags, encrypted attachment blobs); nothing is real.

Prints JSON lines:
  reports.verify   evidence items verified per second (reports of 11 text messages)
  reports.bundle   time to verify, then build and sign, a bundle of 11 messages with one
                   1 MiB attachment (and the zip's size)

    python benchmarks/reports.py [--reports 300] [--bundles 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from covey.moderation import (
    Report,
    ReportCategory,
    build_bundle,
    verify_bundle,
    verify_report,
)
from covey.moderation.simulate import FrankedConversation
from covey.protocol.secrets import ServerFrankingKey

MIB = 1024 * 1024


def _conversation(attachment: bytes | None) -> tuple[FrankedConversation, Report]:
    server_key = ServerFrankingKey(os.urandom(32))
    chat = FrankedConversation(server_key, "dm:alice:bob", ("alice", "bob"))
    for i in range(10):
        chat.send("alice" if i % 3 else "bob", "DALICE01" if i % 3 else "DBOB0001",
                  f"generated benchmark message {i} " + "x" * 80)
    refs = () if attachment is None else (chat.upload(attachment, name="noise.bin",
                                                      mime="application/octet-stream"),)
    last = chat.send("alice", "DALICE01", "the reported message", attachments=refs)
    report = Report(reporter="bob", reported_message_id=last.content.message_id,
                    category=ReportCategory.GROOMING_OR_ENTICEMENT,
                    messages=chat.history("bob"))
    return chat, report


def bench_verify(reports: int) -> dict[str, object]:
    chat, report = _conversation(None)
    verify_report(report, chat.server_key)  # warm-up
    start = time.perf_counter()
    for _ in range(reports):
        verify_report(report, chat.server_key)
    elapsed = time.perf_counter() - start
    items = reports * len(report.messages)
    return {"name": "reports.verify", "reports": reports, "items": items,
            "items_per_s": round(items / elapsed), "ms_per_report": round(
                elapsed / reports * 1000, 3)}


def bench_bundle(bundles: int) -> dict[str, object]:
    chat, report = _conversation(os.urandom(MIB))
    key = Ed25519PrivateKey.generate()
    verify_ms, build_ms, check_ms = [], [], []
    size = 0
    for i in range(bundles):
        t0 = time.perf_counter()
        verification = verify_report(report, chat.server_key, blobs=chat.blobs)
        t1 = time.perf_counter()
        bundle = build_bundle(verification, key, created_at_ms=1_767_225_600_000 + i)
        data = bundle.to_zip()
        t2 = time.perf_counter()
        assert verify_bundle(data, key.public_key()).ok
        t3 = time.perf_counter()
        verify_ms.append((t1 - t0) * 1000)
        build_ms.append((t2 - t1) * 1000)
        check_ms.append((t3 - t2) * 1000)
        size = len(data)
    return {"name": "reports.bundle", "messages": len(report.messages),
            "attachment_bytes": MIB, "bundles": bundles,
            "verify_ms_p50": round(statistics.median(verify_ms), 2),
            "build_and_sign_ms_p50": round(statistics.median(build_ms), 2),
            "build_and_sign_ms_max": round(max(build_ms), 2),
            "offline_check_ms_p50": round(statistics.median(check_ms), 2),
            "zip_bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=300)
    parser.add_argument("--bundles", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(bench_verify(args.reports)), flush=True)
    print(json.dumps(bench_bundle(args.bundles)), flush=True)


if __name__ == "__main__":
    main()
