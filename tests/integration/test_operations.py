"""docs/operations.md, checked against real `covey server` processes: the trust registry
given as flags, and a backup of a live database (SQLite's online backup API; PostgreSQL's
`pg_dump`) restored and read back by a device that was offline when it was taken."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from covey.client import Client
from covey.server.process import free_port, wait_until_healthy
from tests.support.age import OPERATOR, write_registry

PASSPHRASE = "operations test passphrase"


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    env["COLUMNS"] = "200"
    return env


def test_trust_registry_flags_on_covey_server(tmp_path: Path) -> None:
    registry = tmp_path / "trust-registry.json"
    write_registry(registry, [])
    port = free_port()
    command = [sys.executable, "-m", "covey", "server", "--port", str(port),
               "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'covey.db'}",
               "--data-dir", str(tmp_path / "data"), "--trust-registry", str(registry),
               "--trust-registry-key", OPERATOR.public_key]
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=_server_env(), stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        assert wait_until_healthy(f"http://127.0.0.1:{port}", proc, 60), log_path.read_text()
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False).json()
        assert health["trust_registry"]["state"] == "current", health
        assert f"age issuers from {registry}" in log_path.read_text()
    finally:
        proc.terminate()
        proc.wait(20)

    # The registry's key is required with it, and an http:// registry is refused: one
    # line, exit 2, no traceback.
    for extra in (["--trust-registry", str(registry)],
                  ["--trust-registry", "http://registry.example/r.json",
                   "--trust-registry-key", OPERATOR.public_key]):
        result = subprocess.run(
            [sys.executable, "-m", "covey", "server", "--port", str(free_port()),
             "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'other.db'}",
             "--data-dir", str(tmp_path / "other"), *extra],
            capture_output=True, text=True, env=_server_env(), timeout=60)
        out = result.stdout + result.stderr
        assert result.returncode == 2, out
        assert "Traceback" not in out and "trust_registry" in out, out


def _sqlite_path(server: Any) -> Path:
    return Path(make_url(server.database_url).database or "")


def _online_backup(source: Path, target: Path) -> None:
    """What docs/operations.md tells an operator to run against the live database."""
    live = sqlite3.connect(source)
    copy = sqlite3.connect(target)
    try:
        live.backup(copy)
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        copy.close()
        live.close()


def _restore(backup: Path, database: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, database)
    database.chmod(0o600)


def _libpq(database_url: str) -> str:
    """The libpq address of a SQLAlchemy PostgreSQL URL (what pg_dump and pg_restore take)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def _pg_dump(server: Any, target: Path) -> None:
    subprocess.run(["pg_dump", "--format=custom", f"--file={target}",
                    _libpq(server.database_url)], check=True, timeout=120)


def _pg_restore(backup: Path, server: Any) -> None:
    subprocess.run(["pg_restore", "--clean", "--if-exists", "--no-owner",
                    f"--dbname={_libpq(server.database_url)}", str(backup)],
                   check=True, timeout=120)


async def _offline_messages_survive(server: Any, tmp_path: Path,
                                    backup: Any, restore: Any) -> None:
    """Bob's device is offline; alice's messages wait in the server's mailbox. A backup
    taken while the server runs, restored after it stops, gives bob exactly the messages
    sent before the backup."""
    alice = await Client.register(server.url, "alice", tmp_path / "alice.db",
                                  PASSPHRASE, scrypt_n=2**12)
    bob = await Client.register(server.url, "bob", tmp_path / "bob.db", PASSPHRASE,
                                scrypt_n=2**12)
    await bob.close()
    try:
        before = ["see you at the library at 4", "bring the maths homework",
                  "and the charger, please"]
        for text in before:
            await alice.send_text("bob", text)
        await alice.flush()
        await asyncio.to_thread(backup)
        await alice.send_text("bob", "sent after the backup")
        await alice.flush()
    finally:
        await alice.close()

    # Restore: stop the server, restore the backup, start it again on the same data
    # directory (its keys are not in the database).
    await asyncio.to_thread(server.stop)
    await asyncio.to_thread(restore)
    await asyncio.to_thread(server.start)

    bob = await Client.open(tmp_path / "bob.db", PASSPHRASE)
    try:
        got = [(await bob.next_message(20)).text for _ in before]
        assert got == before
        with pytest.raises(TimeoutError):
            await bob.next_message(3)  # the message sent after the backup is not in it
    finally:
        await bob.close()


@pytest.mark.parametrize("covey_server", ["sqlite"], indirect=True)
async def test_a_live_sqlite_backup_restores_the_queued_messages(covey_server: Any,
                                                                  tmp_path: Path) -> None:
    backup = tmp_path / "backup" / "covey.db"
    backup.parent.mkdir()
    database = _sqlite_path(covey_server)
    await _offline_messages_survive(covey_server, tmp_path,
                                    lambda: _online_backup(database, backup),
                                    lambda: _restore(backup, database))


@pytest.mark.postgres
@pytest.mark.parametrize("covey_server", ["postgres"], indirect=True)
async def test_a_pg_dump_of_a_live_server_restores_the_queued_messages(
        covey_server: Any, tmp_path: Path) -> None:
    backup = tmp_path / "covey.dump"
    await _offline_messages_survive(covey_server, tmp_path,
                                    lambda: _pg_dump(covey_server, backup),
                                    lambda: _pg_restore(backup, covey_server))
