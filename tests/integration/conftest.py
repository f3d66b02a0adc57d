"""Fixtures that run a real `covey server` process on SQLite or PostgreSQL.

`covey_server` is parametrized over `sqlite` and `postgres`; each test gets a fresh
database and data dir, and can SIGKILL, stop and restart the process on the same state.
PostgreSQL comes from COVEY_TEST_POSTGRES_URL and must be reachable: no silent skips.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

POSTGRES_URL = os.environ.get("COVEY_TEST_POSTGRES_URL",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_command() -> list[str]:
    # `python -m covey server` loads every sub-command module; until they all exist,
    # start the same command through `python -m covey.server`.
    if all(importlib.util.find_spec(f"covey.cli.{m}") for m in ("server", "demo", "chat")):
        return [sys.executable, "-m", "covey", "server"]
    return [sys.executable, "-m", "covey.server"]


class CoveyServer:
    """A `covey server` subprocess bound to one database, data dir and port."""

    def __init__(self, database_url: str, data_dir: Path, env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.env = dict(env or {})
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str] | None = None, timeout: float = 30) -> CoveyServer:
        """Start (or restart) on the same db, data dir and port; `env` adds COVEY_* vars."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the server is already running")
        if env is not None:
            self.env.update(env)
        full_env = {**os.environ, **self.env}
        full_env.pop("COVEY_CONFIG", None)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*_server_command(), "--host", "127.0.0.1", "--port", str(self.port),
             "--database-url", self.database_url, "--data-dir", str(self.data_dir)],
            env=full_env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"covey server exited with {self.proc.returncode}:\n"
                                   f"{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"covey server did not become healthy:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flush; what was committed must survive."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, env: dict[str, str] | None = None) -> CoveyServer:
        self.stop()
        return self.start(env)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def counts(self) -> dict[str, int]:
        """Rows per table, read straight from the database (for "nothing changed")."""
        from sqlalchemy import func, select

        from covey.server.storage.engine import create_engine
        from covey.server.storage.schema import metadata

        async def _count() -> dict[str, int]:
            engine = create_engine(self.database_url)
            try:
                async with engine.connect() as conn:
                    return {t.name: int(await conn.scalar(select(func.count()).select_from(t))
                                        or 0) for t in metadata.sorted_tables}
            finally:
                await engine.dispose()

        return asyncio.run(_count())


def _admin_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_admin_url(POSTGRES_URL), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


BACKENDS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def covey_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CoveyServer]:
    """A running `covey server` on a fresh SQLite file or PostgreSQL database."""
    database_url = request.getfixturevalue("_database_" + request.param)
    server = CoveyServer(database_url, tmp_path / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(f"--- server log ---\n{server.log()}", file=sys.stderr)


@pytest.fixture
def _database_sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'covey.db'}"


@pytest.fixture
def _database_postgres() -> Iterator[str]:
    from sqlalchemy.engine import make_url

    name = f"covey_{secrets.token_hex(6)}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is needed for the postgres tests and is "
                    f"not usable ({type(exc).__name__}: {exc}). Start it or set "
                    f"COVEY_TEST_POSTGRES_URL.", pytrace=False)
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except Exception as exc:  # leave the database behind rather than hide a test result
        print(f"could not drop {name}: {exc}", file=sys.stderr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server: starts a real `covey server` process")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything that uses the fixture starts a server: `-m server` selects exactly those.
    for item in items:
        if "covey_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)
