"""The migrations are one linear chain (issue 10), on real SQLite and PostgreSQL: an empty
database, a database at each earlier revision, and databases stamped with the old branched
revisions (0002-0006 each revising 0001, 0007-0012 revising 0006: several heads) all
upgrade to the one head with exactly the schema a fresh database gets. A `covey server`
then starts on such a database and works."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from covey.server.storage.engine import (
    BRANCHED_PARENTS,
    MIGRATIONS_DIR,
    alembic_config,
    create_engine,
    upgrade_to_head,
)
from tests.support.raw import register
from tests.support.server import BACKENDS, CoveyServer, postgres_database, sqlite_url

pytestmark = [pytest.mark.timeout(600)]

SCRIPT = ScriptDirectory.from_config(alembic_config())
CHAIN = [rev.revision for rev in reversed(list(SCRIPT.walk_revisions()))]

# States main's databases were in while the revisions branched: the revisions each was
# upgraded to (with their ancestors in the branched graph), in the order they merged.
BRANCHED_STATES = {
    "before-0004": ["0002", "0003", "0005", "0006"],
    "before-0008": ["0002", "0005", "0007", "0009"],
    "before-0012": ["0002", "0005", "0007", "0008", "0009"],
    "all-branches": ["heads"],
}


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with postgres_database() as url:
            yield url


def _branched_script(root: Path) -> Config:
    """The revisions as they were before the chain: same upgrade code, old parents."""
    versions = root / "versions"
    versions.mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        shutil.copy(MIGRATIONS_DIR / name, root / name)
    for revision, parents in BRANCHED_PARENTS.items():
        source = Path(str(SCRIPT.get_revision(revision).path))  # type: ignore[union-attr]
        text = source.read_text()
        down = repr(parents[0]) if parents else "None"
        depends = repr(parents[1]) if len(parents) > 1 else "None"
        text = re.sub(r"^down_revision: .*$", f"down_revision: str | None = {down}", text,
                      flags=re.M)
        text = re.sub(r"^depends_on: .*$", f"depends_on: str | None = {depends}", text,
                      flags=re.M)
        (versions / source.name).write_text(text)
    cfg = Config()
    cfg.set_main_option("script_location", str(root))
    cfg.set_main_option("path_separator", "os")
    return cfg


async def _run(url: str, job: Any) -> Any:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(job)
    finally:
        await engine.dispose()


def _upgrade_to(cfg: Config, targets: list[str]) -> Any:
    def job(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        for target in targets:
            command.upgrade(cfg, target)

    return job


def _heads(connection: Connection) -> list[str]:
    return sorted(MigrationContext.configure(connection).get_current_heads())


def _schema(connection: Connection) -> dict[str, Any]:
    found = inspect(connection)
    return {table: (sorted(c["name"] for c in found.get_columns(table)),
                    sorted(str(i["name"]) for i in found.get_indexes(table)))
            for table in sorted(found.get_table_names())}


async def _upgraded(url: str) -> tuple[list[str], dict[str, Any]]:
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
        async with engine.connect() as conn:
            return await conn.run_sync(_heads), await conn.run_sync(_schema)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def fresh_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What an empty SQLite database gets (the reference; PostgreSQL is compared with a
    fresh PostgreSQL database in its own test)."""
    url = sqlite_url(tmp_path_factory.mktemp("fresh"))
    heads, schema = asyncio.run(_upgraded(url))
    assert heads == [CHAIN[-1]]
    return schema


def test_the_revisions_form_one_chain() -> None:
    assert len(SCRIPT.get_heads()) == 1, SCRIPT.get_heads()
    for revision in SCRIPT.walk_revisions():
        assert not revision.dependencies, revision.revision
        assert not revision.is_merge_point, revision.revision
    assert CHAIN[0] == "0001" and sorted(CHAIN) == CHAIN


def test_an_empty_database_upgrades_to_the_head(database_url: str,
                                                fresh_schema: dict[str, Any]) -> None:
    heads, schema = asyncio.run(_upgraded(database_url))
    assert heads == [CHAIN[-1]]
    assert schema.keys() == fresh_schema.keys()
    assert {t: cols for t, (cols, _) in schema.items()} == {
        t: cols for t, (cols, _) in fresh_schema.items()}


@pytest.mark.parametrize("revision", CHAIN[:-1])
def test_a_database_at_an_earlier_revision_upgrades(
        revision: str, database_url: str, fresh_schema: dict[str, Any]) -> None:
    asyncio.run(_run(database_url, _upgrade_to(alembic_config(), [revision])))
    assert asyncio.run(_run(database_url, _heads)) == [revision]
    heads, schema = asyncio.run(_upgraded(database_url))
    assert heads == [CHAIN[-1]]
    assert schema == fresh_schema if database_url.startswith("sqlite") else (
        schema.keys() == fresh_schema.keys())


@pytest.mark.parametrize("state", BRANCHED_STATES)
def test_a_database_stamped_with_the_branched_heads_upgrades(
        state: str, database_url: str, fresh_schema: dict[str, Any], tmp_path: Path) -> None:
    old = _branched_script(tmp_path / "branched")
    asyncio.run(_run(database_url, _upgrade_to(old, BRANCHED_STATES[state])))
    before = asyncio.run(_run(database_url, _heads))
    assert len(before) > 1, before  # several heads, as main's databases were stamped
    heads, schema = asyncio.run(_upgraded(database_url))
    assert heads == [CHAIN[-1]]
    assert {t: cols for t, (cols, _) in schema.items()} == {
        t: cols for t, (cols, _) in fresh_schema.items()}
    if database_url.startswith("sqlite"):
        assert schema == fresh_schema
    # Upgrading again is a no-op.
    assert asyncio.run(_upgraded(database_url))[0] == [CHAIN[-1]]


def test_a_server_starts_on_a_database_of_the_branched_era(
        database_url: str, tmp_path: Path) -> None:
    old = _branched_script(tmp_path / "branched")
    asyncio.run(_run(database_url, _upgrade_to(old, ["heads"])))
    server = CoveyServer(database_url, tmp_path / "data")
    server.start()
    try:
        alice = register(server.url, "alice")
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.get("/healthz").status_code == 200
            me = http.get("/v1/me", headers=alice.headers)
            assert me.status_code == 200 and me.json()["user_id"] == alice.user_id
    finally:
        server.stop()
    assert asyncio.run(_run(database_url, _heads)) == [CHAIN[-1]]
