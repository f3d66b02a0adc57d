"""Age-proof benchmark: proof creation, verification and size, per band.

Runs one Covey issuer (revocable credential definition), one holder per band, and
`--runs` challenge → prove → verify rounds each. Prints one JSON line per band:

    python benchmarks/age.py [--runs 50] [--capacity 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

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


if __name__ == "__main__":
    main()
