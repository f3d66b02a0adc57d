"""SQL of the scan queue (`scan_jobs`): claiming due jobs, reading the stored safety copy a
job names, and finishing a batch of scans in one transaction (the detectors' read logged,
the job deleted, or kept with its error and the time of its next attempt).

Jobs are inserted by the message batch itself (`_batch.py`), in the message's transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from covey.server.storage import schema_safety as s
from covey.server.storage.repository import Repository

SCAN_READER = "detectors"
SCAN_PURPOSE = "scan on arrival"


@dataclass(frozen=True, slots=True)
class MessageKey:
    """Names one stored message: its conversation, sender (user and device) and id."""

    conversation_id: str
    sender_user: str
    sender_device: str
    message_id: str


@dataclass(frozen=True, slots=True)
class ScanJobRow:
    job_id: int
    key: MessageKey
    created_ms: int
    next_attempt_ms: int
    attempts: int
    alerted: bool
    last_error: str | None


@dataclass(frozen=True, slots=True)
class StoredCopy:
    """A kept safety copy, as sealed, with the envelope facts it is bound to."""

    key: MessageKey
    participants: list[str]
    commitment: str
    key_id: str
    sealed: bytes
    server_ts_ms: int


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """One finished attempt: `error` None deletes the job, otherwise it is retried at
    `next_attempt_ms`; `alerted` records that its detection events went out; `read_ms`
    None when no detector read the copy (none enabled), so no read is logged."""

    key: MessageKey
    read_ms: int | None
    error: str | None = None
    next_attempt_ms: int = 0
    alerted: bool = False


@dataclass(frozen=True, slots=True)
class ScanBacklog:
    """What operators are shown: jobs that failed at least once, and how many are due."""

    failed: list[ScanJobRow]
    failed_total: int
    overdue: int


_JOB_COLUMNS = (s.scan_jobs.c.id, s.scan_jobs.c.conversation_id, s.scan_jobs.c.sender_user,
                s.scan_jobs.c.sender_device, s.scan_jobs.c.message_id,
                s.scan_jobs.c.created_ms, s.scan_jobs.c.next_attempt_ms,
                s.scan_jobs.c.attempts, s.scan_jobs.c.alerted, s.scan_jobs.c.last_error)


def _job(row: Any) -> ScanJobRow:
    return ScanJobRow(int(row[0]), MessageKey(str(row[1]), str(row[2]), str(row[3]),
                                              str(row[4])),
                      int(row[5]), int(row[6]), int(row[7]), bool(row[8]),
                      None if row[9] is None else str(row[9]))


def _job_of(key: MessageKey) -> ColumnElement[bool]:
    c = s.scan_jobs.c
    return and_(c.conversation_id == key.conversation_id, c.sender_user == key.sender_user,
                c.sender_device == key.sender_device, c.message_id == key.message_id)


def _copy_of(key: MessageKey) -> ColumnElement[bool]:
    c = s.safety_copies.c
    return and_(c.conversation_id == key.conversation_id, c.sender_user == key.sender_user,
                c.sender_device == key.sender_device, c.message_id == key.message_id)


class ScanJobStore:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    async def claim_due(self, now_ms: int, lease_ms: int, limit: int,
                        skip: set[MessageKey]) -> list[ScanJobRow]:
        """Due jobs this process now holds for `lease_ms` (another process's claim, or a
        job already in hand, is left alone)."""
        c = s.scan_jobs.c
        async with self._repo.engine.connect() as conn:
            rows = [_job(r) for r in await conn.execute(
                select(*_JOB_COLUMNS).where(c.next_attempt_ms <= now_ms)
                .order_by(c.next_attempt_ms).limit(limit))]
        wanted = [r for r in rows if r.key not in skip]
        if not wanted:
            return []

        async def job(conn: AsyncConnection) -> list[ScanJobRow]:
            claimed = []
            for row in wanted:
                result = await conn.execute(update(s.scan_jobs).where(
                    c.id == row.job_id, c.next_attempt_ms == row.next_attempt_ms).values(
                        next_attempt_ms=now_ms + lease_ms))
                if result.rowcount == 1:
                    claimed.append(row)
            return claimed

        claimed: list[ScanJobRow] = await self._repo.writer.run_job(job)
        return claimed

    async def copy_for(self, key: MessageKey) -> StoredCopy | None:
        c = s.safety_copies.c
        async with self._repo.engine.connect() as conn:
            row = (await conn.execute(
                select(c.participants, c.commitment, c.key_id, c.sealed, c.server_ts_ms)
                .where(_copy_of(key)).order_by(c.id.desc()).limit(1))).first()
        if row is None:
            return None
        return StoredCopy(key, list(json.loads(row[0])), str(row[1]), str(row[2]),
                          bytes(row[3]), int(row[4]))

    async def copy_by_id(self, conversation_id: str, sender_user: str,
                         message_id: str) -> StoredCopy | None:
        """A kept safety copy named without its sender device (evidence a conversation
        detector recorded)."""
        c = s.safety_copies.c
        async with self._repo.engine.connect() as conn:
            row = (await conn.execute(
                select(c.sender_device, c.participants, c.commitment, c.key_id, c.sealed,
                       c.server_ts_ms)
                .where(c.conversation_id == conversation_id, c.sender_user == sender_user,
                       c.message_id == message_id).order_by(c.id.desc()).limit(1))).first()
        if row is None:
            return None
        key = MessageKey(conversation_id, sender_user, str(row[0]), message_id)
        return StoredCopy(key, list(json.loads(row[1])), str(row[2]), str(row[3]),
                          bytes(row[4]), int(row[5]))

    async def finish(self, outcomes: Sequence[ScanOutcome]) -> None:
        """Log each read and delete or reschedule each job, all in one transaction."""
        copies = s.safety_copies.c
        jobs = s.scan_jobs.c

        async def job(conn: AsyncConnection) -> None:
            for outcome in outcomes:
                key = outcome.key
                copy_id = None if outcome.read_ms is None else await conn.scalar(
                    select(copies.id).where(_copy_of(key)).order_by(copies.id.desc())
                    .limit(1))
                if copy_id is not None:
                    await conn.execute(insert(s.safety_copy_reads).values(
                        copy_id=copy_id, message_id=key.message_id,
                        conversation_id=key.conversation_id, sender_user=key.sender_user,
                        reader=SCAN_READER,
                        purpose=SCAN_PURPOSE, read_ms=outcome.read_ms))
                if outcome.error is None:
                    await conn.execute(delete(s.scan_jobs).where(_job_of(key)))
                    continue
                values = {"attempts": jobs.attempts + 1, "last_error": outcome.error[:2000],
                          "next_attempt_ms": outcome.next_attempt_ms}
                if outcome.alerted:
                    values["alerted"] = 1
                await conn.execute(update(s.scan_jobs).where(_job_of(key)).values(values))

        if outcomes:
            await self._repo.writer.run_job(job)

    async def drop(self, key: MessageKey) -> None:
        """Forget a job that can never run (its safety copy is gone)."""

        async def job(conn: AsyncConnection) -> None:
            await conn.execute(delete(s.scan_jobs).where(_job_of(key)))

        await self._repo.writer.run_job(job)

    async def depth(self) -> int:
        """Jobs in the queue (due, leased or waiting for a retry): for /metrics."""
        async with self._repo.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(s.scan_jobs)) or 0)

    async def backlog(self, now_ms: int, limit: int = 50) -> ScanBacklog:
        c = s.scan_jobs.c
        async with self._repo.engine.connect() as conn:
            failed = [_job(r) for r in await conn.execute(
                select(*_JOB_COLUMNS).where(c.attempts > 0).order_by(c.created_ms)
                .limit(limit))]
            failed_total = int(await conn.scalar(
                select(func.count()).select_from(s.scan_jobs).where(c.attempts > 0)) or 0)
            overdue = int(await conn.scalar(
                select(func.count()).select_from(s.scan_jobs).where(
                    c.attempts == 0, c.next_attempt_ms <= now_ms)) or 0)
        return ScanBacklog(failed, failed_total, overdue)
