"""Age-proof benchmark: proof creation, verification and size, per band; then the relay.

Runs one Covey issuer (revocable credential definition), one holder per band, and
`--runs` challenge → prove → verify rounds each. Prints one JSON line per band. Then
(unless `--no-server`) starts a real `covey server` process trusting that issuer and
prints one more line, `age.server`: its verification throughput (presentations made
beforehand, submitted concurrently over HTTP) and the time of a registration that
includes an age proof (`Client.register(..., wallet=...)`):

    python benchmarks/age.py [--runs 50] [--capacity 1000] [--no-server]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import httpx

from covey.age import (
    AgeBand,
    Approved,
    CheckOutcome,
    Issuer,
    TrustRegistry,
    Verifier,
    Wallet,
    years_before,
)
from covey.client import Client
from covey.server.process import ServerProcess


class _Declared:
    def review(self, evidence: dict[str, str]) -> CheckOutcome:
        return Approved(date.fromisoformat(evidence["birth_date"]))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--capacity", type=int, default=1000,
                        help="revocation registry size (tails file ~256 bytes per credential)")
    parser.add_argument("--no-server", dest="server", action="store_false",
                        help="skip the real-server part")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="presentations in flight against the server")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        issuer = Issuer.create(Path(tmp) / "issuer", "did:web:bank.example", _Declared(),
                               capacity=args.capacity)
        setup_s = time.perf_counter() - started
        registry = TrustRegistry.from_entries([issuer.publish()])
        status_lists = registry.status_lists()
        tails = issuer.tails_path.parent
        verifier = Verifier(registry)
        today = datetime.now(UTC).date()

        for band, years in ((AgeBand.SIXTEEN_PLUS, 30), (AgeBand.UNDER_16, 10)):
            wallet = Wallet.create()
            started = time.perf_counter()
            result = issuer.submit_request(
                wallet.request_credential(issuer.offer()),
                {"birth_date": years_before(today, years).isoformat()})
            assert result.message is not None
            wallet.store_credential(result.message)
            issuance_s = time.perf_counter() - started

            # The first proof also computes the non-revocation witness from the tails file;
            # the wallet caches it until the status list changes.
            started = time.perf_counter()
            wallet.present(verifier.challenge(band), status_lists=status_lists, tails_dir=tails)
            first_prove_s = time.perf_counter() - started

            prove, verify, sizes = [], [], []
            for _ in range(args.runs):
                challenge = verifier.challenge(band)
                started = time.perf_counter()
                submission = wallet.present(challenge, status_lists=status_lists,
                                            tails_dir=tails)
                prove.append(time.perf_counter() - started)
                body = json.dumps(submission, separators=(",", ":")).encode()
                sizes.append(len(body))
                started = time.perf_counter()
                verified = verifier.verify(body)
                verify.append(time.perf_counter() - started)
                assert verified.band is band

            verify_median = statistics.median(verify)
            print(json.dumps({
                "benchmark": f"age.{band.name.lower()}",
                "runs": args.runs,
                "registry_capacity": args.capacity,
                "prove_ms_median": _ms(statistics.median(prove)),
                "prove_ms_p95": _ms(_percentile(prove, 0.95)),
                "verify_ms_median": _ms(verify_median),
                "verify_ms_p95": _ms(_percentile(verify, 0.95)),
                "proof_bytes": int(statistics.median(sizes)),
                "proof_bytes_p95": int(_percentile(sizes, 0.95)),
                "verifications_per_s": round(1 / verify_median, 1),
                "first_prove_with_witness_ms": _ms(first_prove_s),
                "issuance_ms": _ms(issuance_s),
                "issuer_setup_s": round(setup_s, 2),
            }), flush=True)

        if args.server:
            print(json.dumps(asyncio.run(_server_benchmark(
                Path(tmp), issuer, runs=args.runs, concurrency=args.concurrency))), flush=True)


def _device_dir(root: Path, n: int, issuer: Issuer) -> Path:
    """A store path for device `n`, with the issuer's public tails file beside it."""
    store = root / "devices" / f"user{n}.db"
    tails = Path(f"{store}.tails")
    tails.mkdir(parents=True)
    shutil.copy(issuer.tails_path, tails / issuer.tails_path.name)
    return store


async def _server_benchmark(root: Path, issuer: Issuer, *, runs: int,
                            concurrency: int) -> dict[str, object]:
    """Throughput of POST /v1/age/presentation on a real server, and registration + proof."""
    registry = root / "registry.json"
    TrustRegistry.from_entries([issuer.publish()]).save(registry)
    server = ServerProcess(f"sqlite+aiosqlite:///{root / 'server' / 'covey.db'}",
                           root / "server", env={"COVEY_TRUST_REGISTRY": str(registry),
                                # one IP registers every bench user
                                "COVEY_RATE_LOGIN_BURST": "100000",
                                "COVEY_RATE_REGISTER_BURST": "100000"})
    server.start()
    today = datetime.now(UTC).date()
    template = Wallet.create()
    result = issuer.submit_request(template.request_credential(issuer.offer()),
                                   {"birth_date": years_before(today, 30).isoformat()})
    assert result.message is not None
    template.store_credential(result.message)
    wallet_bytes = template.to_bytes()
    clients: list[Client] = []
    try:
        # Registration including a proof, as a new device with a filled wallet would do it.
        register_ms = []
        for n in range(max(5, min(runs, 20))):
            store = _device_dir(root, n, issuer)
            started = time.perf_counter()
            client = await Client.register(server.url, f"user{n}", store, "bench passphrase",
                                           wallet=wallet_bytes, connect=False)
            register_ms.append(time.perf_counter() - started)
            clients.append(client)
            assert (await client.whoami()).age.band == "16+"

        # Presentations made beforehand (proving is the client's cost), then verified by the
        # server as fast as it can, `concurrency` requests in flight.
        submissions: list[tuple[Client, bytes]] = []
        prove = []
        for i in range(runs):
            client = clients[i % len(clients)]
            challenge = await client._api.age_challenge("16+", None)
            started = time.perf_counter()
            submission = client._age.wallet.present(
                challenge, status_lists=challenge["status_lists"],
                tails_dir=client._age._tails_dir)
            prove.append(time.perf_counter() - started)
            submissions.append((client, json.dumps(submission).encode()))

        async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=60) as http:
            latencies: list[float] = []
            queue = list(submissions)

            async def worker() -> None:
                while queue:
                    client, body = queue.pop()
                    t0 = time.perf_counter()
                    response = await http.post(
                        "/v1/age/presentation", content=body,
                        headers={"Authorization": f"Bearer {client._api.token}",
                                 "Content-Type": "application/json"})
                    latencies.append(time.perf_counter() - t0)
                    assert response.status_code == 200, response.text

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        return {
            "benchmark": "age.server",
            "runs": runs,
            "concurrency": concurrency,
            "prove_ms_median": _ms(statistics.median(prove)),
            "verify_ms_median": _ms(statistics.median(latencies)),
            "verify_ms_p95": _ms(_percentile(latencies, 0.95)),
            "proof_bytes": int(statistics.median(len(b) for _, b in submissions)),
            "verifications_per_s": round(runs / elapsed, 1),
            "registration_with_proof_ms_median": _ms(statistics.median(register_ms)),
            "registration_with_proof_ms_p95": _ms(_percentile(register_ms, 0.95)),
            "registration_target_ms": 250,
        }
    finally:
        for client in clients:
            await client.close()
        server.stop()


if __name__ == "__main__":
    main()
