"""SQL for known-image matches (storage/schema_images.py): record a match, ask whether a
blob is withheld, link a match to its report, list the matches a report or the
transparency report needs, and note a moderator's choice to view a matched image."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from covey.server.storage import schema_safety as s
from covey.server.storage.repository import Repository
from covey.server.storage.scan_jobs import MessageKey, StoredCopy
from covey.server.storage.schema_images import image_matches as m

RELAY = "relay"
USER_REPORT = "user_report"
# How the read log names the reads of preceding messages a known-image report includes.
CONTEXT_READER = "image-match-report"
CONTEXT_PURPOSE = "context of a known-image report"


@dataclass(frozen=True, slots=True)
class ImageMatchRow:
    """One attachment that matched a bank entry, and what was done about it."""

    match_id: str
    origin: str  # RELAY or USER_REPORT
    blob_id: str
    conversation_id: str
    sender_user: str
    sender_device: str
    message_id: str
    plaintext_sha256: str
    query_pdq: str
    quality: int
    bank: str
    entry_id: int
    entry_pdq: str
    entry_meta: dict[str, Any]
    distance: int
    variant: int
    withheld: bool
    child_present: bool
    report_id: str | None
    created_ms: int
    viewed_ms: int | None = None

    def values(self) -> dict[str, Any]:
        row = {f: getattr(self, f) for f in self.__slots__}
        row["entry_meta"] = json.dumps(self.entry_meta, sort_keys=True, separators=(",", ":"))
        return row


_COLUMNS = tuple(m.c[f] for f in ImageMatchRow.__slots__)


def _row(raw: Any) -> ImageMatchRow:
    values = dict(zip(ImageMatchRow.__slots__, raw, strict=True))
    values["entry_meta"] = json.loads(values["entry_meta"])
    values["withheld"] = bool(values["withheld"])
    values["child_present"] = bool(values["child_present"])
    return ImageMatchRow(**values)


class ImageMatchStore:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    async def record(self, rows: Sequence[ImageMatchRow]) -> None:
        if not rows:
            return

        async def job(conn: AsyncConnection) -> None:
            await conn.execute(insert(m), [r.values() for r in rows])

        await self._repo.writer.run_job(job)

    async def delete(self, match_ids: Sequence[str]) -> None:
        if not match_ids:
            return

        async def job(conn: AsyncConnection) -> None:
            await conn.execute(delete(m).where(m.c.match_id.in_(list(match_ids))))

        await self._repo.writer.run_job(job)

    async def withheld(self, blob_id: str) -> bool:
        """Whether a relay match withholds this blob from everyone but its uploader."""
        async with self._repo.engine.connect() as conn:
            found = await conn.scalar(select(m.c.match_id).where(
                m.c.blob_id == blob_id, m.c.withheld.is_(True)).limit(1))
        return found is not None

    async def set_report(self, match_ids: Sequence[str], report_id: str) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(update(m).where(m.c.match_id.in_(list(match_ids)))
                               .values(report_id=report_id))

        await self._repo.writer.run_job(job)

    async def unreported(self, older_than_ms: int, newer_than_ms: int,
                         limit: int = 100) -> list[ImageMatchRow]:
        """Relay matches whose report was not filed (a crash or a failed filing), made
        between the two times."""
        async with self._repo.engine.connect() as conn:
            rows = (await conn.execute(select(*_COLUMNS).where(
                m.c.report_id.is_(None), m.c.origin == RELAY,
                m.c.created_ms < older_than_ms, m.c.created_ms > newer_than_ms)
                .order_by(m.c.created_ms).limit(limit))).all()
        return [_row(r) for r in rows]

    async def for_report(self, report_id: str) -> list[ImageMatchRow]:
        async with self._repo.engine.connect() as conn:
            rows = (await conn.execute(select(*_COLUMNS).where(m.c.report_id == report_id)
                                       .order_by(m.c.created_ms, m.c.match_id))).all()
        return [_row(r) for r in rows]

    async def for_message(self, conversation_id: str, sender_user: str,
                          message_id: str) -> list[ImageMatchRow]:
        async with self._repo.engine.connect() as conn:
            rows = (await conn.execute(select(*_COLUMNS).where(
                m.c.conversation_id == conversation_id, m.c.sender_user == sender_user,
                m.c.message_id == message_id, m.c.origin == RELAY))).all()
        return [_row(r) for r in rows]

    async def all_matches(self) -> list[ImageMatchRow]:
        async with self._repo.engine.connect() as conn:
            rows = (await conn.execute(select(*_COLUMNS))).all()
        return [_row(r) for r in rows]

    async def mark_viewed(self, report_id: str, blob_id: str, at_ms: int) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(update(m).where(
                m.c.report_id == report_id, m.c.blob_id == blob_id,
                m.c.viewed_ms.is_(None)).values(viewed_ms=at_ms))

        await self._repo.writer.run_job(job)

    async def preceding_copies(self, conversation_id: str, recipient: str, before_ms: int,
                               limit: int, now_ms: int) -> list[StoredCopy]:
        """The latest `limit` kept safety copies of the conversation sent to `recipient`
        (not by it) before `before_ms`, oldest first; each read is logged."""
        c = s.safety_copies.c

        async def job(conn: AsyncConnection) -> list[StoredCopy]:
            rows = (await conn.execute(
                select(c.id, c.message_id, c.sender_user, c.sender_device, c.participants,
                       c.commitment, c.key_id, c.sealed, c.server_ts_ms)
                .where(c.conversation_id == conversation_id, c.sender_user != recipient,
                       c.server_ts_ms < before_ms)
                .order_by(c.server_ts_ms.desc(), c.id.desc()).limit(limit))).all()
            if rows:
                await conn.execute(insert(s.safety_copy_reads), [
                    {"copy_id": r[0], "message_id": r[1], "conversation_id": conversation_id,
                     "sender_user": r[2], "reader": CONTEXT_READER,
                     "purpose": CONTEXT_PURPOSE, "read_ms": now_ms} for r in rows])
            return [StoredCopy(MessageKey(conversation_id, r[2], r[3], r[1]),
                               list(json.loads(r[4])), str(r[5]), str(r[6]), bytes(r[7]),
                               int(r[8])) for r in reversed(rows)]

        return await self._repo.writer.run_job(job)
