"""SQL for reporting and moderation, on the relay's engine and its serial writer.

Reads go straight to the engine; every write goes through the writer (one at a time on
SQLite), like the relay's own writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from covey.server.storage import schema_reports as r
from covey.server.storage.repository import Repository

# `reported_user` of an unverified claim: the report is against nobody.
UNATTRIBUTED = ""


@dataclass(frozen=True)
class ReportRow:
    """A report's metadata (everything but the sealed evidence). A report is attributed
    to `reported_user` only when the reported message verified; otherwise it is an
    *unverified claim* (`reported_user` empty, priority 0) that no action can target."""

    report_id: str
    fingerprint: str
    reporter: str
    reported_user: str
    category: str
    priority: int
    reporter_band: str
    policy_mode: str
    status: str
    verified_count: int
    total_count: int
    reported_verified: bool
    created_ms: int
    actioned_ms: int | None
    preserve_until_ms: int
    purged: bool

    @property
    def attributed_user(self) -> str | None:
        """The sender the verified evidence names, or None for an unverified claim."""
        return self.reported_user if self.reported_verified and self.reported_user else None

    @property
    def attribution(self) -> str:
        return "verified" if self.attributed_user is not None else "unverified_claim"


@dataclass(frozen=True)
class NewReport:
    row: ReportRow
    sealed: bytes


@dataclass(frozen=True)
class AuditRow:
    at_ms: int
    actor: str
    action: str
    report_id: str | None
    detail: str


@dataclass(frozen=True)
class ModeratorRow:
    username: str
    password_hash: str = field(repr=False)
    role: str
    disabled: bool = False


@dataclass(frozen=True)
class SessionRow:
    username: str
    role: str
    csrf_token: str = field(repr=False)
    expires_ms: int


_REPORT_COLUMNS = (r.reports.c.report_id, r.reports.c.fingerprint, r.reports.c.reporter,
                   r.reports.c.reported_user, r.reports.c.category, r.reports.c.priority,
                   r.reports.c.reporter_band, r.reports.c.policy_mode, r.reports.c.status,
                   r.reports.c.verified_count, r.reports.c.total_count,
                   r.reports.c.reported_verified, r.reports.c.created_ms,
                   r.reports.c.actioned_ms, r.reports.c.preserve_until_ms,
                   r.reports.c.sealed_evidence.is_(None))


def _report(row: Any) -> ReportRow:
    return ReportRow(str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]),
                     int(row[5]), str(row[6]), str(row[7]), str(row[8]), int(row[9]),
                     int(row[10]), bool(row[11]), int(row[12]),
                     None if row[13] is None else int(row[13]), int(row[14]), bool(row[15]))


class ReportRepository:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._engine: AsyncEngine = repo.engine

    async def _write(self, job: Any) -> Any:
        return await self._repo.writer.run_job(job)

    # --- reports ---------------------------------------------------------------------

    async def insert_report(self, new: NewReport, audit: AuditRow) -> tuple[ReportRow, bool]:
        """Store a report unless its fingerprint is known; (row, created)."""

        async def job(conn: AsyncConnection) -> tuple[ReportRow, bool]:
            found = await _by_fingerprint(conn, new.row.fingerprint)
            if found is not None:
                return found, False
            row = new.row
            await conn.execute(insert(r.reports).values(
                report_id=row.report_id, fingerprint=row.fingerprint, reporter=row.reporter,
                reported_user=row.reported_user, category=row.category,
                priority=row.priority, reporter_band=row.reporter_band,
                policy_mode=row.policy_mode, status=row.status,
                verified_count=row.verified_count, total_count=row.total_count,
                reported_verified=int(row.reported_verified), created_ms=row.created_ms,
                actioned_ms=None, preserve_until_ms=row.preserve_until_ms,
                sealed_evidence=new.sealed))
            await _audit(conn, audit)
            return row, True

        try:
            result: tuple[ReportRow, bool] = await self._write(job)
        except IntegrityError:
            # Another process stored the same fingerprint between our check and insert.
            async with self._engine.connect() as conn:
                again = await _by_fingerprint(conn, new.row.fingerprint)
            if again is None:
                raise
            return again, False
        return result

    async def get_report(self, report_id: str) -> ReportRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(*_REPORT_COLUMNS).where(
                r.reports.c.report_id == report_id))).first()
        return None if row is None else _report(row)

    async def sealed_evidence(self, report_id: str) -> bytes | None:
        async with self._engine.connect() as conn:
            value = await conn.scalar(select(r.reports.c.sealed_evidence).where(
                r.reports.c.report_id == report_id))
        return None if value is None else bytes(value)

    async def queue(self, statuses: Sequence[str], limit: int = 200) -> list[ReportRow]:
        """Open reports, highest priority first, then oldest first."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(*_REPORT_COLUMNS).where(
                r.reports.c.status.in_(list(statuses))).order_by(
                r.reports.c.priority.desc(), r.reports.c.created_ms,
                r.reports.c.report_id).limit(limit))
            return [_report(x) for x in rows]

    async def reports_against(self, user_id: str, *, excluding: str) -> list[ReportRow]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(*_REPORT_COLUMNS).where(
                r.reports.c.reported_user == user_id,
                r.reports.c.report_id != excluding).order_by(r.reports.c.created_ms))
            return [_report(x) for x in rows]

    async def all_reports(self) -> list[ReportRow]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(*_REPORT_COLUMNS).order_by(
                r.reports.c.created_ms))
            return [_report(x) for x in rows]

    async def set_status(self, report_id: str, status: str, now_ms: int,
                         audit: AuditRow) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(update(r.reports).where(
                r.reports.c.report_id == report_id).values(status=status, actioned_ms=now_ms))
            await _audit(conn, audit)

        await self._write(job)

    async def purge_evidence(self, now_ms: int) -> list[str]:
        """Delete the sealed evidence of every report past its preservation period."""

        async def job(conn: AsyncConnection) -> list[str]:
            ids = [str(x[0]) for x in await conn.execute(select(r.reports.c.report_id).where(
                r.reports.c.preserve_until_ms <= now_ms,
                r.reports.c.sealed_evidence.is_not(None)))]
            if ids:
                await conn.execute(update(r.reports).where(
                    r.reports.c.report_id.in_(ids)).values(sealed_evidence=None))
                for report_id in ids:
                    await _audit(conn, AuditRow(now_ms, "system", "evidence_purged",
                                                report_id, "preservation period over"))
            return ids

        result: list[str] = await self._write(job)
        return result

    # --- blocks and suspensions ------------------------------------------------------

    async def add_block(self, blocker: str, blocked: str, now_ms: int) -> None:
        async def job(conn: AsyncConnection) -> None:
            exists = await conn.scalar(select(r.blocks.c.blocker).where(
                r.blocks.c.blocker == blocker, r.blocks.c.blocked == blocked))
            if exists is None:
                await conn.execute(insert(r.blocks).values(blocker=blocker, blocked=blocked,
                                                           created_ms=now_ms))

        await self._write(job)

    async def blocks(self) -> set[tuple[str, str]]:
        async with self._engine.connect() as conn:
            return {(str(a), str(b)) for a, b in await conn.execute(
                select(r.blocks.c.blocker, r.blocks.c.blocked))}

    async def suspended(self) -> set[str]:
        async with self._engine.connect() as conn:
            return {str(x[0]) for x in await conn.execute(select(r.suspensions.c.user_id))}

    async def suspend(self, user_id: str, report_id: str, actor: str, now_ms: int,
                      audit: AuditRow) -> None:
        async def job(conn: AsyncConnection) -> None:
            exists = await conn.scalar(select(r.suspensions.c.user_id).where(
                r.suspensions.c.user_id == user_id))
            if exists is None:
                await conn.execute(insert(r.suspensions).values(
                    user_id=user_id, report_id=report_id, actor=actor, created_ms=now_ms))
            await conn.execute(update(r.reports).where(
                r.reports.c.report_id == report_id).values(status="suspended",
                                                           actioned_ms=now_ms))
            await _audit(conn, audit)

        await self._write(job)

    async def warn(self, user_id: str, report_id: str, actor: str, now_ms: int,
                   audit: AuditRow) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(insert(r.warnings).values(
                user_id=user_id, report_id=report_id, actor=actor, created_ms=now_ms))
            await conn.execute(update(r.reports).where(
                r.reports.c.report_id == report_id).values(status="warned",
                                                           actioned_ms=now_ms))
            await _audit(conn, audit)

        await self._write(job)

    # --- escalations -----------------------------------------------------------------

    async def record_escalation(self, report_id: str, bundle_id: str, actor: str,
                                directory: str, now_ms: int, audit: AuditRow) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(delete(r.escalations).where(
                r.escalations.c.report_id == report_id))
            await conn.execute(insert(r.escalations).values(
                report_id=report_id, bundle_id=bundle_id, actor=actor, created_ms=now_ms,
                directory=directory))
            await conn.execute(update(r.reports).where(
                r.reports.c.report_id == report_id).values(status="escalated",
                                                           actioned_ms=now_ms))
            await _audit(conn, audit)

        await self._write(job)

    async def escalation(self, report_id: str) -> tuple[str, str] | None:
        """(bundle id, directory) of a report's escalation, if any."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(r.escalations.c.bundle_id,
                                             r.escalations.c.directory).where(
                r.escalations.c.report_id == report_id))).first()
        return None if row is None else (str(row[0]), str(row[1]))

    async def escalation_directories(self, report_ids: Sequence[str]) -> list[str]:
        async with self._engine.connect() as conn:
            return [str(x[0]) for x in await conn.execute(select(
                r.escalations.c.directory).where(
                r.escalations.c.report_id.in_(list(report_ids))))]

    # --- moderators and sessions -----------------------------------------------------

    async def create_moderator(self, row: ModeratorRow, now_ms: int) -> bool:
        async def job(conn: AsyncConnection) -> bool:
            exists = await conn.scalar(select(r.moderators.c.username).where(
                r.moderators.c.username == row.username))
            if exists is not None:
                await conn.execute(update(r.moderators).where(
                    r.moderators.c.username == row.username).values(
                    password_hash=row.password_hash, role=row.role))
                # A reset password ends every session opened with the old one.
                await conn.execute(delete(r.moderator_sessions).where(
                    r.moderator_sessions.c.username == row.username))
                return False
            await conn.execute(insert(r.moderators).values(
                username=row.username, password_hash=row.password_hash, role=row.role,
                created_ms=now_ms))
            return True

        created: bool = await self._write(job)
        return created

    async def get_moderator(self, username: str) -> ModeratorRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(
                r.moderators.c.username, r.moderators.c.password_hash, r.moderators.c.role,
                r.moderators.c.disabled_ms)
                .where(r.moderators.c.username == username))).first()
        return None if row is None else ModeratorRow(str(row[0]), str(row[1]), str(row[2]),
                                                     row[3] is not None)

    async def set_moderator_disabled(self, username: str, disabled_ms: int | None) -> bool:
        """Disable (ending every session) or re-enable a console account; False if unknown."""

        async def job(conn: AsyncConnection) -> bool:
            changed = await conn.execute(update(r.moderators).where(
                r.moderators.c.username == username).values(disabled_ms=disabled_ms))
            if disabled_ms is not None:
                await conn.execute(delete(r.moderator_sessions).where(
                    r.moderator_sessions.c.username == username))
            return bool(changed.rowcount)

        found: bool = await self._write(job)
        return found

    async def create_session(self, session_hash: bytes, username: str, csrf_token: str,
                             expires_ms: int) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(insert(r.moderator_sessions).values(
                session_hash=session_hash, username=username, csrf_token=csrf_token,
                expires_ms=expires_ms))

        await self._write(job)

    async def get_session(self, session_hash: bytes) -> SessionRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(
                r.moderator_sessions.c.username, r.moderators.c.role,
                r.moderator_sessions.c.csrf_token, r.moderator_sessions.c.expires_ms)
                .join_from(r.moderator_sessions, r.moderators,
                           r.moderators.c.username == r.moderator_sessions.c.username)
                .where(r.moderator_sessions.c.session_hash == session_hash,
                       r.moderators.c.disabled_ms.is_(None)))).first()
        return None if row is None else SessionRow(str(row[0]), str(row[1]), str(row[2]),
                                                   int(row[3]))

    async def delete_session(self, session_hash: bytes) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(delete(r.moderator_sessions).where(
                r.moderator_sessions.c.session_hash == session_hash))

        await self._write(job)

    # --- audit -----------------------------------------------------------------------

    async def audit(self, row: AuditRow) -> None:
        async def job(conn: AsyncConnection) -> None:
            await _audit(conn, row)

        await self._write(job)

    async def audit_log(self, limit: int = 500) -> list[AuditRow]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(
                r.audit_log.c.at_ms, r.audit_log.c.actor, r.audit_log.c.action,
                r.audit_log.c.report_id, r.audit_log.c.detail).order_by(
                r.audit_log.c.id.desc()).limit(limit))
            return [AuditRow(int(x[0]), str(x[1]), str(x[2]),
                             None if x[3] is None else str(x[3]), str(x[4])) for x in rows]

    async def audit_count(self) -> int:
        async with self._engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(r.audit_log)) or 0)


async def _by_fingerprint(conn: AsyncConnection, fingerprint: str) -> ReportRow | None:
    row = (await conn.execute(select(*_REPORT_COLUMNS).where(
        r.reports.c.fingerprint == fingerprint))).first()
    return None if row is None else _report(row)


async def _audit(conn: AsyncConnection, row: AuditRow) -> None:
    await conn.execute(insert(r.audit_log).values(
        at_ms=row.at_ms, actor=row.actor, action=row.action, report_id=row.report_id,
        detail=row.detail))
