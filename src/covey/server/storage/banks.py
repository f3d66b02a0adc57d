"""SQL for hash banks: create, list and remove banks, add entries in bulk, export them,
and the two reads a loader keeps its matcher in sync with (everything up to a version,
and what changed after one). Writes go through the repository's single writer, and each
takes the next `hash_bank_state.version` in its own transaction."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from covey.errors import Conflict, InvalidInput, NotFound
from covey.server.storage.repository import Repository
from covey.server.storage.schema_banks import (
    hash_bank_entries,
    hash_bank_removals,
    hash_bank_state,
    hash_banks,
)

_BANK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FETCH_CHUNK = 50_000


def check_bank_name(name: str) -> str:
    if not _BANK_NAME.fullmatch(name):
        raise InvalidInput(f"bad bank name {name!r}: letters, digits, '_', '.', '-' "
                           "(at most 64, starting with a letter or digit)",
                           code="invalid_bank_name")
    return name


@dataclass(frozen=True, slots=True)
class BankSummary:
    name: str
    entries: int
    created_ms: int


@dataclass(frozen=True, slots=True)
class NewEntry:
    pdq: bytes  # 32 bytes
    meta: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True, slots=True)
class EntryRow:
    entry_id: int
    bank: str
    pdq: bytes
    meta: dict[str, Any]
    source: str
    added_ms: int


@dataclass(frozen=True, slots=True)
class BankChanges:
    """What changed after a version: entries to add, entry ids to drop, or (a bank was
    removed) `reload` to start again from a full load."""

    version: int
    added_ids: list[int]
    added_pdq: list[bytes]
    removed_ids: list[int]
    reload: bool = False


_ENTRY = (hash_bank_entries.c.entry_id, hash_banks.c.name, hash_bank_entries.c.pdq,
          hash_bank_entries.c.meta, hash_bank_entries.c.source, hash_bank_entries.c.added_ms)


def _entry(row: Any) -> EntryRow:
    return EntryRow(int(row[0]), row[1], bytes(row[2]), json.loads(row[3]), row[4], int(row[5]))


async def _next_version(conn: AsyncConnection) -> int:
    # The row lock taken here orders bank writers: versions commit in increasing order.
    await conn.execute(update(hash_bank_state).where(hash_bank_state.c.id == 1)
                       .values(version=hash_bank_state.c.version + 1))
    return int(await conn.scalar(select(hash_bank_state.c.version)
                                 .where(hash_bank_state.c.id == 1)) or 0)


async def _bank_id(conn: AsyncConnection, name: str) -> int:
    bank_id = await conn.scalar(select(hash_banks.c.bank_id).where(hash_banks.c.name == name))
    if bank_id is None:
        raise NotFound(f"no bank named {name!r}", code="bank_not_found")
    return int(bank_id)


class BankStorage:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    # --- banks ---------------------------------------------------------------------------

    async def create_bank(self, name: str, now_ms: int) -> None:
        check_bank_name(name)

        async def job(conn: AsyncConnection) -> None:
            exists = await conn.scalar(select(hash_banks.c.bank_id)
                                       .where(hash_banks.c.name == name))
            if exists is not None:
                raise Conflict(f"a bank named {name!r} exists", code="bank_exists")
            version = await _next_version(conn)
            await conn.execute(insert(hash_banks).values(name=name, created_ms=now_ms,
                                                         version=version))

        await self._repo.writer.run_job(job)

    async def remove_bank(self, name: str) -> int:
        """Delete a bank and its entries; how many entries went with it."""

        async def job(conn: AsyncConnection) -> int:
            bank_id = await _bank_id(conn, name)
            version = await _next_version(conn)
            gone = (await conn.execute(delete(hash_bank_entries).where(
                hash_bank_entries.c.bank_id == bank_id))).rowcount
            await conn.execute(delete(hash_banks).where(hash_banks.c.bank_id == bank_id))
            await conn.execute(insert(hash_bank_removals).values(
                version=version, bank_id=bank_id, entry_id=None))
            return int(gone or 0)

        return await self._repo.writer.run_job(job)

    async def list_banks(self) -> list[BankSummary]:
        count = (select(func.count()).select_from(hash_bank_entries)
                 .where(hash_bank_entries.c.bank_id == hash_banks.c.bank_id)
                 .scalar_subquery())
        async with self._repo.engine.connect() as conn:
            rows = (await conn.execute(select(hash_banks.c.name, count, hash_banks.c.created_ms)
                                       .order_by(hash_banks.c.name))).all()
        return [BankSummary(row[0], int(row[1]), int(row[2])) for row in rows]

    # --- entries -------------------------------------------------------------------------

    async def add_entries(self, name: str, entries: Sequence[NewEntry], now_ms: int) -> int:
        """Add entries to a bank in one transaction; hashes already in it are skipped.
        How many were new."""
        for entry in entries:
            if len(entry.pdq) != 32:
                raise InvalidInput("a PDQ hash is 32 bytes", code="invalid_pdq_hash")

        async def job(conn: AsyncConnection) -> int:
            bank_id = await _bank_id(conn, name)
            if not entries:
                return 0
            version = await _next_version(conn)
            rows = [{"bank_id": bank_id, "pdq": e.pdq, "meta": json.dumps(dict(e.meta),
                     sort_keys=True, separators=(",", ":")), "source": e.source[:200],
                     "added_ms": now_ms, "version": version} for e in entries]
            dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            statement = dialect_insert(hash_bank_entries).on_conflict_do_nothing(
                index_elements=["bank_id", "pdq"])
            await conn.execute(statement, rows)
            # Counted by this transaction's version: drivers disagree on executemany's rowcount.
            return int(await conn.scalar(select(func.count()).select_from(
                hash_bank_entries).where(hash_bank_entries.c.version == version)) or 0)

        return await self._repo.writer.run_job(job)

    async def remove_entries(self, name: str, pdqs: Sequence[bytes]) -> int:
        async def job(conn: AsyncConnection) -> int:
            bank_id = await _bank_id(conn, name)
            ids = [int(i) for i in (await conn.execute(select(hash_bank_entries.c.entry_id)
                   .where(hash_bank_entries.c.bank_id == bank_id,
                          hash_bank_entries.c.pdq.in_(list(pdqs))))).scalars()]
            if not ids:
                return 0
            version = await _next_version(conn)
            await conn.execute(delete(hash_bank_entries).where(
                hash_bank_entries.c.entry_id.in_(ids)))
            await conn.execute(insert(hash_bank_removals), [
                {"version": version, "bank_id": bank_id, "entry_id": i} for i in ids])
            return len(ids)

        return await self._repo.writer.run_job(job)

    async def export(self, name: str) -> AsyncIterator[EntryRow]:
        """A bank's entries in the order they were added, streamed."""
        async with self._repo.engine.connect() as conn:
            bank_id = await _bank_id(conn, name)
            result = await conn.stream(
                select(*_ENTRY).join(hash_banks, hash_banks.c.bank_id
                                     == hash_bank_entries.c.bank_id)
                .where(hash_bank_entries.c.bank_id == bank_id)
                .order_by(hash_bank_entries.c.entry_id))
            async for partition in result.partitions(_FETCH_CHUNK):
                for row in partition:
                    yield _entry(row)

    async def entries_by_id(self, entry_ids: Sequence[int]) -> dict[int, EntryRow]:
        if not entry_ids:
            return {}
        async with self._repo.engine.connect() as conn:
            rows = (await conn.execute(select(*_ENTRY).join(
                hash_banks, hash_banks.c.bank_id == hash_bank_entries.c.bank_id)
                .where(hash_bank_entries.c.entry_id.in_(list(entry_ids))))).all()
        return {int(row[0]): _entry(row) for row in rows}

    # --- what a loader reads -------------------------------------------------------------

    async def version(self) -> int:
        async with self._repo.engine.connect() as conn:
            return int(await conn.scalar(select(hash_bank_state.c.version)
                                         .where(hash_bank_state.c.id == 1)) or 0)

    async def load_all(self) -> AsyncIterator[tuple[int, list[int], list[bytes]]]:
        """Every entry, in chunks of (version, ids, hashes); the version is read first and
        entries newer than it are left for `changes_since`."""
        async with self._repo.engine.connect() as conn:
            version = int(await conn.scalar(select(hash_bank_state.c.version)
                                            .where(hash_bank_state.c.id == 1)) or 0)
            result = await conn.stream(
                select(hash_bank_entries.c.entry_id, hash_bank_entries.c.pdq)
                .where(hash_bank_entries.c.version <= version))
            emitted = False
            async for partition in result.partitions(_FETCH_CHUNK):
                emitted = True
                yield version, [int(r[0]) for r in partition], [bytes(r[1]) for r in partition]
            if not emitted:
                yield version, [], []

    async def changes_since(self, known: int) -> BankChanges:
        async with self._repo.engine.connect() as conn:
            version = int(await conn.scalar(select(hash_bank_state.c.version)
                                            .where(hash_bank_state.c.id == 1)) or 0)
            if version <= known:
                return BankChanges(version, [], [], [])
            removals = (await conn.execute(
                select(hash_bank_removals.c.entry_id).where(
                    hash_bank_removals.c.version > known,
                    hash_bank_removals.c.version <= version))).scalars().all()
            if any(entry_id is None for entry_id in removals):
                return BankChanges(version, [], [], [], reload=True)
            added = (await conn.execute(
                select(hash_bank_entries.c.entry_id, hash_bank_entries.c.pdq).where(
                    hash_bank_entries.c.version > known,
                    hash_bank_entries.c.version <= version))).all()
        return BankChanges(version, [int(r[0]) for r in added], [bytes(r[1]) for r in added],
                           [int(i) for i in removals])
