"""`covey age request|status|prove` through the real `covey` entry point, against a real
issuer process (the operator approves with `covey issuer approve`) and a real server that
trusts it: pending, approved, proven; bad input gets one line and exit 2."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client
from tests.support.age import FAST_SCRYPT, IssuerService, server_env

PASSPHRASE = "age cli passphrase"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerService]:
    service = IssuerService(tmp_path_factory.mktemp("age-cli-issuer")).start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(autouse=True)
def _trust(issuer: IssuerService, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in server_env(issuer.registry).items():
        monkeypatch.setenv(key, value)


def _register(url: str, handle: str, store: Path) -> None:
    async def run() -> None:
        client = await Client.register(url, handle, store, PASSPHRASE, scrypt_n=FAST_SCRYPT,
                                       connect=False)
        await client.close()

    asyncio.run(run())


def _covey(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    env.update({"COVEY_PASSPHRASE": PASSPHRASE, "COLUMNS": "200"})
    return subprocess.run([sys.executable, "-m", "covey", *args], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.mark.shared_server
@pytest.mark.parametrize("covey_server", ["sqlite"], indirect=True)
def test_request_pending_approved_proven(covey_server: Any, issuer: IssuerService,
                                               tmp_path: Path) -> None:
    store = tmp_path / "tess.db"
    _register(covey_server.url, "tess", store)
    # Before any credential, `covey whoami --prove` says what to do (issue 14, item 2).
    early = _covey("whoami", "--store", str(store), "--prove")
    assert early.returncode == 2, early.stdout + early.stderr
    assert "no_age_credential" in early.stdout and "covey age request" in early.stdout

    asked = _covey("age", "request", "--store", str(store), "--issuer", issuer.url,
                   "--evidence", "student_id=S-1234")
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert "pending" in asked.stdout
    ticket = asked.stdout.split("ticket ")[1].split()[0]

    before = _covey("age", "status", "--store", str(store))
    assert before.returncode == 0, before.stderr
    assert "band: unverified" in before.stdout
    assert f"pending: ticket {ticket}" in before.stdout

    approved = subprocess.run(
        [sys.executable, "-m", "covey", "issuer", "approve", ticket, "--birth-date",
         date(1990, 5, 17).isoformat(), "--dir", str(issuer.dir)],
        capture_output=True, text=True, timeout=120)
    assert approved.returncode == 0, approved.stdout + approved.stderr

    after = _covey("age", "status", "--store", str(store))
    assert after.returncode == 0, after.stderr
    assert f"approved: ticket {ticket}" in after.stdout
    assert "credentials on this device: 1" in after.stdout
    assert "pending:" not in after.stdout
    assert "next: covey age prove" in after.stdout

    proven = _covey("age", "prove", "--store", str(store))
    assert proven.returncode == 0, proven.stdout + proven.stderr
    assert "proven: 16+" in proven.stdout
    assert "end-to-end encrypted" in proven.stdout

    final = _covey("age", "status", "--store", str(store))
    assert "band: 16+" in final.stdout


@pytest.mark.shared_server
@pytest.mark.parametrize("covey_server", ["sqlite"], indirect=True)
def test_bad_input_gets_one_line_and_exit_2(covey_server: Any, issuer: IssuerService,
                                                  tmp_path: Path) -> None:
    store = tmp_path / "uma.db"
    _register(covey_server.url, "uma", store)
    cases = [
        ("age", "request", "--store", str(store), "--issuer", issuer.url,
         "--evidence", "no-equals-sign"),
        ("age", "request", "--store", str(store), "--issuer", "not a url",
         "--evidence", "a=b"),
        ("age", "prove", "--store", str(store)),
        ("age", "status", "--store", str(tmp_path / "missing.db")),
    ]
    for args in cases:
        result = _covey(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr, args
    assert "no age credential" in _covey("age", "prove", "--store", str(store)).stdout
