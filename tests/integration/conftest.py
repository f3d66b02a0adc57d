"""Fixtures that run a real `covey server` process on SQLite or PostgreSQL.

`covey_server` is parametrized over `sqlite` and `postgres`; each test gets a fresh
database and data dir, and can SIGKILL, stop and restart the process on the same state.
PostgreSQL comes from COVEY_TEST_POSTGRES_URL and must be reachable: no silent skips.
"""

from __future__ import annotations

import asyncio
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


class CoveyServer(ServerProcess):
    """A `covey server` subprocess bound to one database, data dir and port."""

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
    # The tests talk to the console over plain http://127.0.0.1: no Secure cookies.
    env = {"COVEY_CONSOLE_ALLOW_HTTP": "true"}
    if request.node.get_closest_marker("opaque_envelopes") is not None:
        # Random bytes stand in for ciphertexts, so there is no plaintext to make a
        # safety copy of: relay these with safety copies off (test_safety_*.py covers them).
        env["COVEY_SAFETY_MODE"] = "e2ee-only"
    server = CoveyServer(database_url, tmp_path / "data", env=env)
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
    config.addinivalue_line("markers", "opaque_envelopes: sends envelopes of random bytes, "
                            "so the server runs in e2ee-only mode (no safety copies)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything that uses the fixture starts a server: `-m server` selects exactly those.
    for item in items:
        if "covey_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)
