"""`covey issuer pending` in an 80-column terminal shows ticket ids that `approve` takes
(unique prefixes, never cut), and `approve` prints the credential id the holder's wallet
shows: one id for one credential."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client
from tests.support.age import PASSPHRASE, IssuerService, server_env

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerService]:
    service = IssuerService(tmp_path_factory.mktemp("age-issuer-ids")).start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(autouse=True)
def _trust_env(issuer: IssuerService, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in server_env(issuer.registry).items():
        monkeypatch.setenv(key, value)


def _covey_80(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    env["COLUMNS"] = "80"
    return subprocess.run([sys.executable, "-m", "covey", *args], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.mark.parametrize("covey_server", ["sqlite"], indirect=True)
async def test_pending_ids_fit_and_approve_names_the_wallets_credential(
        covey_server: Any, issuer: IssuerService, tmp_path: Path) -> None:
    clients = [await Client.register(covey_server.url, f"teen{i}", tmp_path / f"t{i}.db",
                                     PASSPHRASE) for i in range(2)]
    tickets: list[asyncio.Future[str]] = [asyncio.get_running_loop().create_future()
                                          for _ in clients]
    requests = [asyncio.create_task(client.request_age_credential(
        issuer.url, {"student_id": f"S-{i} with a rather long [bold] record number 0042"},
        within_s=90, on_pending=lambda t, f=future: f.set_result(t)))  # type: ignore[misc]
        for i, (client, future) in enumerate(zip(clients, tickets, strict=True))]
    try:
        full = [await asyncio.wait_for(f, 30) for f in tickets]
        listed = await asyncio.to_thread(_covey_80, "issuer", "pending", "--dir",
                                         str(issuer.dir))
        assert listed.returncode == 0, listed.stderr
        assert all(len(line) <= 80 for line in listed.stdout.splitlines()), listed.stdout
        assert "[bold]" in listed.stdout  # evidence printed as given, not as markup
        shown = []
        for ticket in full:
            found = re.search(rf"\b({ticket[:8]}[0-9a-f]*)\b", listed.stdout)
            assert found is not None, listed.stdout
            assert ticket.startswith(found.group(1))
            shown.append(found.group(1))

        for client, short, request in zip(clients, shown, requests, strict=True):
            approved = await asyncio.to_thread(
                _covey_80, "issuer", "approve", short, "--birth-date",
                "2000-01-01", "--dir", str(issuer.dir))
            assert approved.returncode == 0, approved.stdout + approved.stderr
            credential_id = re.search(r"credential (\w+)", approved.stdout).group(1)  # type: ignore[union-attr]
            held = await asyncio.wait_for(request, 60)
            assert held.credential_id == credential_id
            assert [c.credential_id for c in client.age_credentials()] == [credential_id]
    finally:
        for task in requests:
            task.cancel()
        for client in clients:
            await client.close()
