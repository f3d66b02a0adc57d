"""A real `covey issuer` (CLI `init`, `serve` process, `publish`) shared by an age test
module, and helpers to get credentials from it with an operator's approval."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from covey.age import Issuer, ManualApproval
from covey.age.signed import OperatorKey
from covey.client import Client
from covey.server.process import free_port, wait_until_healthy

PASSPHRASE = "age integration passphrase"
FAST_SCRYPT = 2**12
# The operator who signs every trust registry in a test run; servers pin its public key
# (`server_env`).
OPERATOR = OperatorKey.generate()


def operator_key_file(root: Path) -> Path:
    """The operator's key as `covey issuer publish --operator-key` reads it."""
    path = root / "operator.key"
    if not path.exists():
        path.write_bytes(OPERATOR.to_pem())
        path.chmod(0o600)
    return path


def write_registry(path: Path, entries: list[dict[str, Any]],
                   signed_at_ms: int | None = None) -> None:
    """A trust registry of `entries`, signed by the test operator."""
    OPERATOR.write(path, entries, signed_at_ms)


def covey(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    env["COLUMNS"] = "200"
    result = subprocess.run([sys.executable, "-m", "covey", *args], capture_output=True,
                            text=True, timeout=120, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"covey {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


class IssuerService:
    """`covey issuer init` + `covey issuer serve` in a child process + `publish`."""

    def __init__(self, root: Path, issuer_id: str = "did:web:school.example", *,
                 capacity: int = 100) -> None:
        self.root = root
        self.capacity = capacity
        self.dir = root / "issuer"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.registry = root / "registry.json"
        self.issuer_id = issuer_id
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> IssuerService:
        covey("issuer", "init", "--dir", str(self.dir), "--id", self.issuer_id,
              "--url", self.url, "--capacity", str(self.capacity))
        self.publish()
        log = (self.root / "issuer.log").open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "covey", "issuer", "serve", "--dir", str(self.dir),
             "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        if not wait_until_healthy(self.url, self.proc):
            raise RuntimeError("the issuer service did not start")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def publish(self, out: Path | None = None) -> None:
        covey("issuer", "publish", "--dir", str(self.dir), "--out", str(out or self.registry),
              "--operator-key", str(operator_key_file(self.root)))

    def operator(self) -> Issuer:
        """The operator's view of the same directory (what `covey issuer approve` opens)."""
        return Issuer(self.dir, ManualApproval())

    def entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = json.loads((self.dir / "public.json").read_text())
        return entry


async def get_credential(client: Client, issuer: IssuerService, birth_date: date,
                         *, use_cli: bool = False) -> str:
    """Request a credential over HTTP; approve the pending ticket as the operator would.
    Returns the issuer-side credential id (for `revoke`)."""
    ticket: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(client.request_age_credential(
        issuer.url, {"student_id": "S-1234"}, within_s=60,
        on_pending=lambda t: ticket.set_result(t)))
    ticket_id = await asyncio.wait_for(ticket, 30)
    if use_cli:
        out = await asyncio.to_thread(covey, "issuer", "approve", ticket_id, "--birth-date",
                                      birth_date.isoformat(), "--dir", str(issuer.dir))
        credential_id = out.stdout.split("credential ")[1].split()[0]
    else:
        result = await asyncio.to_thread(issuer.operator().approve, ticket_id, birth_date)
        assert result.credential_id is not None
        credential_id = result.credential_id
    await asyncio.wait_for(task, 60)
    return credential_id


class ShiftedClock:
    """The wallet's clock, moved forward together with the server's (no sleeping)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def today() -> date:
    return datetime.now(UTC).date()


def server_env(registry: Path, **extra: Any) -> dict[str, str]:
    env = {"COVEY_TRUST_REGISTRY": str(registry),
           "COVEY_TRUST_REGISTRY_KEY": OPERATOR.public_key}
    env.update({f"COVEY_{k.upper()}": str(v) for k, v in extra.items()})
    return env


async def wait_for(predicate: Callable[[], Any], within_s: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.1)
