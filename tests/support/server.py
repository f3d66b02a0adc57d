"""Real `covey server` processes for tests, on SQLite or PostgreSQL.

`covey_server` is parametrized over `sqlite` and `postgres`. By default each test gets a
fresh database, data dir and process, and can SIGKILL, stop and restart it on the same
state. A test marked `shared_server` instead gets its module's running server for that
backend (started once, see `SharedServers`): for tests that make their own accounts with
unique handles, never restart the server and compare counts only before and after.
PostgreSQL comes from COVEY_TEST_POSTGRES_URL and must be reachable: no silent skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from covey.server.process import ServerProcess

POSTGRES_URL = os.environ.get("COVEY_TEST_POSTGRES_URL",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

BACKENDS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]

# Every test on a shared server registers and logs in from 127.0.0.1: the per-IP buckets
# would run dry across a module. Per-account limits keep their defaults; a test's own
# COVEY_RATE_* variables still win, and rate-limit tests use a fresh server.
SHARED_IP_LIMITS = {"COVEY_RATE_REGISTER_BURST": "100000",
                    "COVEY_RATE_LOGIN_BURST": "100000",
                    "COVEY_RATE_SEND_BURST": "100000"}

# Start-up takes 1-3 s on a quiet machine but over 30 s when many suites share two cores:
# wait longer than ServerProcess's default before calling a start failed.
START_TIMEOUT_S = 90.0

# Servers one module keeps running at once per backend (tests that set their own
# COVEY_* variables get a server of their own; the oldest is stopped beyond this).
_MAX_SHARED_PER_BACKEND = 2


class CoveyServer(ServerProcess):
    """A `covey server` subprocess bound to one database, data dir and port."""

    def start(self, env: dict[str, str] | None = None,
              timeout: float = START_TIMEOUT_S) -> Any:
        return super().start(env, timeout)

    def counts(self) -> dict[str, int]:
        """Rows per table, read straight from the database (for "nothing changed")."""
        from sqlalchemy import func, select

        from covey.server.storage import schema_safety  # noqa: F401  (registers tables)
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

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a read-only SQL query, straight from the database. Sync: from async
        tests call it through `asyncio.to_thread`."""
        from sqlalchemy import text

        from covey.server.storage.engine import create_engine

        async def _rows() -> list[tuple[Any, ...]]:
            engine = create_engine(self.database_url)
            try:
                async with engine.connect() as conn:
                    return [tuple(r) for r in await conn.execute(text(sql))]
            finally:
                await engine.dispose()

        return asyncio.run(_rows())


class SharedCoveyServer(CoveyServer):
    """A server several tests use in turn: a test may not stop, kill or restart it."""

    _owned = False

    def _refuse(self) -> None:
        if not self._owned:
            raise AssertionError("this test shares its module's server (marked "
                                 "shared_server): one that stops, kills or restarts the "
                                 "server needs a fresh one; remove the mark")

    def start(self, env: dict[str, str] | None = None,
              timeout: float = START_TIMEOUT_S) -> Any:
        self._refuse()
        return super().start(env, timeout)

    def stop(self) -> None:
        self._refuse()
        super().stop()

    def kill(self) -> None:
        self._refuse()
        super().kill()

    def shut_down(self) -> None:
        """Stop it for good (the module is done with it)."""
        self._owned = True
        super().stop()


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


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'covey.db'}"


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards; fails the test if PostgreSQL
    is not reachable."""
    from sqlalchemy.engine import make_url

    name = f"covey_{secrets.token_hex(6)}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is needed for the postgres tests and is "
                    f"not usable ({type(exc).__name__}: {exc}). Start it or set "
                    f"COVEY_TEST_POSTGRES_URL.", pytrace=False)
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:  # leave the database behind rather than hide a test result
            print(f"could not drop {name}: {exc}", file=sys.stderr)


def _marker_env(node: pytest.Item) -> dict[str, str]:
    # The tests talk to the console over plain http://127.0.0.1: no Secure cookies.
    env = {"COVEY_CONSOLE_ALLOW_HTTP": "true"}
    if node.get_closest_marker("opaque_envelopes") is not None:
        # Random bytes stand in for ciphertexts, so there is no plaintext to make a
        # safety copy of: relay these with safety copies off (test_safety_*.py covers them).
        env["COVEY_SAFETY_MODE"] = "e2ee-only"
    return env


class SharedServers:
    """The running servers of one test module, keyed by backend and by the COVEY_*
    settings a fresh server would have been started with (the environment at the time,
    so a test's monkeypatched settings are honoured, plus its markers)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._servers: dict[tuple[str, tuple[tuple[str, str], ...]], SharedCoveyServer] = {}
        self._databases: dict[SharedCoveyServer, contextlib.ExitStack] = {}

    def get(self, backend: str, env: dict[str, str]) -> SharedCoveyServer:
        settings = {k: v for k, v in os.environ.items() if k.startswith("COVEY_")
                    and k not in ("COVEY_CONFIG", "COVEY_TEST_POSTGRES_URL")}
        full = {**SHARED_IP_LIMITS, **settings, **env}
        key = (backend, tuple(sorted(full.items())))
        server = self._servers.get(key)
        if server is None:
            same_backend = [k for k in self._servers if k[0] == backend]
            for old in same_backend[:max(0, len(same_backend) - _MAX_SHARED_PER_BACKEND + 1)]:
                self._close(self._servers.pop(old))
            server = self._start(backend, full)
            self._servers[key] = server
        return server

    def _start(self, backend: str, env: dict[str, str]) -> SharedCoveyServer:
        stack = contextlib.ExitStack()
        root = self._root / f"{backend}-{secrets.token_hex(3)}"
        root.mkdir()
        url = stack.enter_context(postgres_database()) if backend == "postgres" \
            else sqlite_url(root)
        server = SharedCoveyServer(url, root / "data", env=env)
        server._owned = True
        try:
            server.start()
        except BaseException:
            stack.close()
            raise
        finally:
            server._owned = False
        self._databases[server] = stack
        return server

    def _close(self, server: SharedCoveyServer) -> None:
        try:
            server.shut_down()
        finally:
            self._databases.pop(server).close()

    def close(self) -> None:
        while self._servers:
            self._close(self._servers.popitem()[1])


@pytest.fixture(scope="module")
def shared_covey_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedServers]:
    """The module's shared servers (see `covey_server` and the `shared_server` mark)."""
    servers = SharedServers(tmp_path_factory.mktemp("shared-servers"))
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture(params=BACKENDS)
def covey_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CoveyServer]:
    """A running `covey server` on a fresh SQLite file or PostgreSQL database; for a test
    marked `shared_server`, its module's running server for that backend."""
    server: CoveyServer
    if request.node.get_closest_marker("shared_server") is not None:
        pool: SharedServers = request.getfixturevalue("shared_covey_servers")
        server = pool.get(request.param, _marker_env(request.node))
        yield server
    else:
        database_url = request.getfixturevalue("_database_" + request.param)
        server = CoveyServer(database_url, tmp_path / "data", env=_marker_env(request.node))
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
    return sqlite_url(tmp_path)


@pytest.fixture
def _database_postgres() -> Iterator[str]:
    with postgres_database() as url:
        yield url
