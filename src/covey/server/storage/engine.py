"""Async engines for SQLite (aiosqlite, WAL) and PostgreSQL (asyncpg), and start-up migrations.

SQLite runs WAL with `synchronous=FULL`: a committed message survives power loss before its
ack. Engines hide bound parameters from errors, so logs never carry tokens' hashes or bodies.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from covey.errors import InvalidInput

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str) -> AsyncEngine:
    """One async engine for `url`: `sqlite+aiosqlite:///...` or `postgresql+asyncpg://...`."""
    parsed = make_url(url)
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite":
        if driver != "aiosqlite":
            raise InvalidInput("SQLite needs the async driver: sqlite+aiosqlite:///path")
        if not parsed.database or parsed.database == ":memory:":
            # The writer thread and the readers open the file separately: it must exist.
            raise InvalidInput("the relay's SQLite database must be a file path")
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if driver != "asyncpg":
            raise InvalidInput("PostgreSQL needs the async driver: postgresql+asyncpg://...")
        return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True,
                                   hide_parameters=True)
    raise InvalidInput(f"unsupported database backend {backend!r}")


def sqlite_sync_engine(url: URL) -> Engine:
    """A synchronous engine on the same SQLite file (for the single writer thread)."""
    engine = sa_create_engine(url.set(drivername="sqlite"), pool_size=1, max_overflow=0,
                              connect_args={"timeout": 30, "check_same_thread": False},
                              hide_parameters=True)
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "connect", _no_autocheckpoint)
    return engine


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def sqlite_checkpoint(path: str) -> None:
    """A passive WAL checkpoint on a connection of its own (never blocks the writer)."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        conn.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_size_limit=67108864")
    cursor.close()


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    return cfg


# Before the migrations became one chain, 0002-0006 each revised 0001 and 0007-0012
# revised 0006 (0007 also depending on 0004, 0009 on 0003): databases upgraded then are
# stamped with several heads. These were the parents; what a stamp meant is read here.
BRANCHED_PARENTS: dict[str, tuple[str, ...]] = {
    "0001": (), "0002": ("0001",), "0003": ("0001",), "0004": ("0001",),
    "0005": ("0001",), "0006": ("0001",), "0007": ("0006", "0004"), "0008": ("0006",),
    "0009": ("0006", "0003"), "0012": ("0006",),
}


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Apply every alembic migration not yet applied (`alembic upgrade heads`), first
    bringing a database stamped with the old branched revisions onto the chain."""

    def _upgrade(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        _onto_the_chain(connection, cfg)
        command.upgrade(cfg, "heads")

    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Cluster nodes starting together: one migrates, the others wait for it.
            await conn.execute(text("SELECT pg_advisory_xact_lock(4352634217)"))
        await conn.run_sync(_upgrade)


def _onto_the_chain(connection: Connection, cfg: Config) -> None:
    """A database stamped with several heads (the branched revisions) has applied exactly
    those and their ancestors in the old graph. Walk the chain: stamp each revision it
    has, apply each it lacks (one may be missing between applied ones, e.g. 0008 merged
    after 0009), so nothing runs twice and nothing is skipped."""
    heads = MigrationContext.configure(connection).get_current_heads()
    script = ScriptDirectory.from_config(cfg)
    if len(heads) <= 1 or len(script.get_heads()) != 1:
        return  # on the chain already (or a branched script: `upgrade heads` as before)
    chain = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    applied: set[str] = set()
    pending = list(heads)
    while pending:
        revision = pending.pop()
        if revision in applied:
            continue
        applied.add(revision)
        parents = BRANCHED_PARENTS.get(revision)
        if parents is None:
            down = script.get_revision(revision).down_revision
            parents = () if down is None else (down,) if isinstance(down, str) else tuple(down)
        pending.extend(parents)
    prefix = 0
    while prefix < len(chain) and chain[prefix] in applied:
        prefix += 1
    if prefix == 0:
        return
    command.stamp(cfg, chain[prefix - 1], purge=True)
    for revision in chain[prefix:]:
        if revision in applied:
            command.stamp(cfg, revision)
        else:
            command.upgrade(cfg, revision)
