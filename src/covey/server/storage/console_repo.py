"""SQL for the moderation console's own views and work: the filtered queue and the view of
handled reports, assignments, notes, and the account facts a report page shows about the
reported user (storage/schema_console.py). Reads go straight to the engine; writes go
through the relay's serial writer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from covey.server.storage import schema as t
from covey.server.storage import schema_console as c
from covey.server.storage import schema_reports as r
from covey.server.storage.reports_repo import (
    _REPORT_COLUMNS,
    AuditRow,
    ReportRow,
    _audit,
    _report,
)
from covey.server.storage.repository import Repository
from covey.server.storage.schema_age import age_bands

HANDLED_STATUSES = ("dismissed", "warned", "suspended", "escalated")


@dataclass(frozen=True)
class QueueFilter:
    """What the queue page asks for; empty fields do not filter. `view` is "open" or
    "handled"; `query` matches a report id prefix or a user id, case-insensitively."""

    view: str = "open"
    category: str = ""
    priority: int | None = None
    reporter_band: str = ""
    status: str = ""
    assignee: str = ""
    query: str = ""


@dataclass(frozen=True)
class QueueEntry:
    row: ReportRow
    assignee: str | None


@dataclass(frozen=True)
class NoteRow:
    author: str
    created_ms: int
    text: str


@dataclass(frozen=True)
class AccountFacts:
    """What the report page shows about the reported user: no content, only counts."""

    user_id: str
    exists: bool
    created_ms: int | None
    reports_against: int
    blocks_by_under_16: int
    blocks_total: int


class ConsoleRepository:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._engine: AsyncEngine = repo.engine

    async def _write(self, job: Any) -> Any:
        return await self._repo.writer.run_job(job)

    async def reports(self, want: QueueFilter, limit: int = 200) -> list[QueueEntry]:
        """The queue (open reports, highest priority then oldest first) or the handled
        reports (most recently actioned first), filtered."""
        rep = r.reports.c
        handled = want.view == "handled"
        statuses = list(HANDLED_STATUSES) if handled else ["open"]
        if want.status:
            statuses = [s for s in statuses if s == want.status]
        query = (select(*_REPORT_COLUMNS, c.report_assignments.c.moderator)
                 .join_from(r.reports, c.report_assignments,
                            c.report_assignments.c.report_id == rep.report_id, isouter=True)
                 .where(rep.status.in_(statuses)))
        if want.category:
            query = query.where(rep.category == want.category)
        if want.priority is not None:
            query = query.where(rep.priority == want.priority)
        if want.reporter_band:
            query = query.where(rep.reporter_band == want.reporter_band)
        if want.assignee == "-":
            query = query.where(c.report_assignments.c.moderator.is_(None))
        elif want.assignee:
            query = query.where(c.report_assignments.c.moderator == want.assignee)
        text = want.query.strip().lower()
        if text:
            # Only a verified report names its reported user: an unverified claim's
            # claimed sender is not searchable (it is not shown either).
            query = query.where(or_(
                func.lower(rep.report_id).startswith(text, autoescape=True),
                func.lower(rep.reporter) == text,
                (func.lower(rep.reported_user) == text) & (rep.reported_verified == 1)))
        if handled:
            query = query.order_by(rep.actioned_ms.desc(), rep.report_id)
        else:
            query = query.order_by(rep.priority.desc(), rep.created_ms, rep.report_id)
        async with self._engine.connect() as conn:
            rows = await conn.execute(query.limit(limit))
            return [QueueEntry(_report(x[:-1]), None if x[-1] is None else str(x[-1]))
                    for x in rows]

    async def reports_between(self, start_ms: int | None,
                              end_ms: int | None) -> list[ReportRow]:
        """Every report received in [start_ms, end_ms), oldest first."""
        query = select(*_REPORT_COLUMNS)
        if start_ms is not None:
            query = query.where(r.reports.c.created_ms >= start_ms)
        if end_ms is not None:
            query = query.where(r.reports.c.created_ms < end_ms)
        async with self._engine.connect() as conn:
            rows = await conn.execute(query.order_by(r.reports.c.created_ms))
            return [_report(x) for x in rows]

    # --- assignment and notes --------------------------------------------------------

    async def assignee(self, report_id: str) -> str | None:
        async with self._engine.connect() as conn:
            found = await conn.scalar(select(c.report_assignments.c.moderator).where(
                c.report_assignments.c.report_id == report_id))
        return None if found is None else str(found)

    async def assign(self, report_id: str, moderator: str | None, by: str, now_ms: int,
                     audit: AuditRow) -> None:
        """Assign a report to `moderator`, or unassign it (None)."""

        async def job(conn: AsyncConnection) -> None:
            await conn.execute(delete(c.report_assignments).where(
                c.report_assignments.c.report_id == report_id))
            if moderator is not None:
                await conn.execute(insert(c.report_assignments).values(
                    report_id=report_id, moderator=moderator, assigned_by=by,
                    assigned_ms=now_ms))
            await _audit(conn, audit)

        await self._write(job)

    async def add_note(self, report_id: str, author: str, text: str, now_ms: int,
                       audit: AuditRow) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(insert(c.report_notes).values(
                report_id=report_id, author=author, created_ms=now_ms, text=text))
            await _audit(conn, audit)

        await self._write(job)

    async def notes(self, report_id: str) -> list[NoteRow]:
        n = c.report_notes.c
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(n.author, n.created_ms, n.text).where(
                n.report_id == report_id).order_by(n.id))
            return [NoteRow(str(a), int(at), str(text)) for a, at, text in rows]

    async def moderators(self) -> list[str]:
        """Usernames of the enabled console accounts, for the assignment list."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(r.moderators.c.username).where(
                r.moderators.c.disabled_ms.is_(None)).order_by(r.moderators.c.username))
            return [str(x[0]) for x in rows]

    # --- account facts ---------------------------------------------------------------

    async def account_facts(self, user_id: str) -> AccountFacts:
        """Age of the account, verified reports against it, and blocks of it by accounts
        last proven under 16 (the band the contact rules hold them to)."""
        async with self._engine.connect() as conn:
            created = await conn.scalar(select(t.users.c.created_ms).where(
                t.users.c.user_id == user_id))
            against = await conn.scalar(select(func.count()).select_from(r.reports).where(
                r.reports.c.reported_user == user_id, r.reports.c.reported_verified == 1))
            blocks_total = await conn.scalar(select(func.count()).select_from(r.blocks).where(
                r.blocks.c.blocked == user_id))
            by_children = await conn.scalar(
                select(func.count()).select_from(r.blocks).join(
                    age_bands, age_bands.c.user_id == r.blocks.c.blocker).where(
                    r.blocks.c.blocked == user_id, age_bands.c.band == "under-16"))
        return AccountFacts(user_id, created is not None,
                            None if created is None else int(created), int(against or 0),
                            int(by_children or 0), int(blocks_total or 0))

