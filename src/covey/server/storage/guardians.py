"""SQL for guardians: links (propose, accept, request removal, remove) and alerts (store,
list, acknowledge). Writes go through the repository's single writer; the limits that
must hold across concurrent requests (one link per pair, guardians per child, pending
proposals per account) are checked inside the writing transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from covey.errors import Conflict, NotFound
from covey.server.storage.repository import Repository
from covey.server.storage.schema_guardians import guardian_alerts, guardian_links
from covey.server.storage.schema_reports import blocks

ACTIVE = ("active", "removal_requested")  # statuses in which a guardian gets alerts


@dataclass(frozen=True, slots=True)
class LinkRow:
    link_id: str
    child: str
    guardian: str
    status: str
    proposed_by: str
    created_ms: int
    accepted_ms: int | None
    removal_requested_ms: int | None


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert_id: str
    guardian: str
    child: str
    kind: str
    created_ms: int
    category: str | None = None
    other_user: str | None = None
    conversation_id: str | None = None
    detector: str | None = None
    code: str | None = None
    severity: str | None = None
    acknowledged_ms: int | None = None


_LINK = (guardian_links.c.link_id, guardian_links.c.child, guardian_links.c.guardian,
         guardian_links.c.status, guardian_links.c.proposed_by, guardian_links.c.created_ms,
         guardian_links.c.accepted_ms, guardian_links.c.removal_requested_ms)
_ALERT = (guardian_alerts.c.alert_id, guardian_alerts.c.guardian, guardian_alerts.c.child,
          guardian_alerts.c.kind, guardian_alerts.c.created_ms, guardian_alerts.c.category,
          guardian_alerts.c.other_user, guardian_alerts.c.conversation_id,
          guardian_alerts.c.detector, guardian_alerts.c.code, guardian_alerts.c.severity,
          guardian_alerts.c.acknowledged_ms)


def _pair(a: str, b: str) -> ColumnElement[bool]:
    links = guardian_links.c
    return or_(and_(links.child == a, links.guardian == b),
               and_(links.child == b, links.guardian == a))


class GuardianStorage:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    # --- links ---------------------------------------------------------------------------

    async def get(self, link_id: str) -> LinkRow | None:
        async with self._repo.engine.connect() as conn:
            row = (await conn.execute(select(*_LINK).where(
                guardian_links.c.link_id == link_id))).first()
        return None if row is None else LinkRow(*row)

    async def between(self, a: str, b: str) -> LinkRow | None:
        """The link or proposal between two accounts, whichever way round."""
        async with self._repo.engine.connect() as conn:
            row = (await conn.execute(select(*_LINK).where(_pair(a, b)))).first()
        return None if row is None else LinkRow(*row)

    async def links_of(self, user_id: str) -> list[LinkRow]:
        """Every link the account is part of, either side, oldest first."""
        async with self._repo.engine.connect() as conn:
            rows = await conn.execute(select(*_LINK).where(or_(
                guardian_links.c.child == user_id, guardian_links.c.guardian == user_id,
            )).order_by(guardian_links.c.created_ms, guardian_links.c.link_id))
            return [LinkRow(*r) for r in rows]

    async def active_guardians(self, children: Sequence[str]) -> dict[str, list[str]]:
        """child -> guardians, for the children among `children` with an active link."""
        if not children:
            return {}
        async with self._repo.engine.connect() as conn:
            rows = await conn.execute(select(guardian_links.c.child, guardian_links.c.guardian)
                                      .where(guardian_links.c.child.in_(list(children)),
                                             guardian_links.c.status.in_(ACTIVE))
                                      .order_by(guardian_links.c.created_ms))
            found: dict[str, list[str]] = {}
            for child, guardian in rows:
                found.setdefault(child, []).append(guardian)
            return found

    async def blocked_either_way(self, a: str, b: str) -> bool:
        async with self._repo.engine.connect() as conn:
            found = await conn.scalar(select(blocks.c.blocker).where(or_(
                and_(blocks.c.blocker == a, blocks.c.blocked == b),
                and_(blocks.c.blocker == b, blocks.c.blocked == a))).limit(1))
        return found is not None

    async def create(self, row: LinkRow, *, max_pending: int) -> LinkRow:
        """Store a pending proposal: refused when the pair already has a link (either
        way round) or the proposer has `max_pending` proposals waiting."""

        async def job(conn: AsyncConnection) -> LinkRow:
            existing = (await conn.execute(select(*_LINK).where(
                _pair(row.child, row.guardian)))).first()
            if existing is not None:
                raise Conflict("you two already have a guardian link or proposal",
                               code="guardian_link_exists",
                               details={"link_id": existing.link_id})
            waiting = await conn.scalar(select(func.count()).select_from(guardian_links).where(
                guardian_links.c.proposed_by == row.proposed_by,
                guardian_links.c.status == "pending"))
            if (waiting or 0) >= max_pending:
                raise Conflict(f"at most {max_pending} proposals may wait for an answer; "
                               "withdraw one first", code="too_many_pending_proposals")
            await conn.execute(insert(guardian_links).values(
                link_id=row.link_id, child=row.child, guardian=row.guardian,
                status=row.status, proposed_by=row.proposed_by, created_ms=row.created_ms,
                accepted_ms=None, removal_requested_ms=None))
            return row

        return await self._repo.writer.run_job(job)

    async def activate(self, link_id: str, at_ms: int, *, max_guardians: int) -> LinkRow:
        """pending → active, unless the child already has `max_guardians` guardians."""

        async def job(conn: AsyncConnection) -> LinkRow:
            link = await _locked(conn, link_id)
            if link.status != "pending":
                raise Conflict("this link is not waiting to be accepted",
                               code="guardian_link_not_pending")
            count = await conn.scalar(select(func.count()).select_from(guardian_links).where(
                guardian_links.c.child == link.child, guardian_links.c.status.in_(ACTIVE)))
            if (count or 0) >= max_guardians:
                raise Conflict(f"an account can have at most {max_guardians} guardians",
                               code="too_many_guardians")
            await conn.execute(update(guardian_links).where(
                guardian_links.c.link_id == link_id,
            ).values(status="active", accepted_ms=at_ms))
            return await _locked(conn, link_id)

        return await self._repo.writer.run_job(job)

    async def request_removal(self, link_id: str, at_ms: int) -> LinkRow:
        """active → removal_requested (a standing request keeps its first time)."""

        async def job(conn: AsyncConnection) -> LinkRow:
            link = await _locked(conn, link_id)
            if link.status == "active":
                await conn.execute(update(guardian_links).where(
                    guardian_links.c.link_id == link_id,
                ).values(status="removal_requested", removal_requested_ms=at_ms))
            return await _locked(conn, link_id)

        return await self._repo.writer.run_job(job)

    async def remove(self, link_id: str, *, expect_status: Sequence[str]) -> LinkRow:
        """Delete the link (and its alerts) if its status is still one of `expect_status`."""

        async def job(conn: AsyncConnection) -> LinkRow:
            link = await _locked(conn, link_id)
            if link.status not in expect_status:
                raise Conflict("the link changed meanwhile; look again",
                               code="guardian_link_changed", details={"status": link.status})
            await conn.execute(delete(guardian_alerts).where(
                guardian_alerts.c.child == link.child,
                guardian_alerts.c.guardian == link.guardian))
            await conn.execute(delete(guardian_links).where(
                guardian_links.c.link_id == link_id))
            return link

        return await self._repo.writer.run_job(job)

    # --- alerts --------------------------------------------------------------------------

    async def add_alerts(self, rows: Sequence[AlertRow]) -> None:
        if not rows:
            return

        async def job(conn: AsyncConnection) -> None:
            await conn.execute(insert(guardian_alerts), [{
                "alert_id": r.alert_id, "guardian": r.guardian, "child": r.child,
                "kind": r.kind, "category": r.category, "other_user": r.other_user,
                "conversation_id": r.conversation_id, "detector": r.detector,
                "code": r.code, "severity": r.severity, "created_ms": r.created_ms,
                "acknowledged_ms": None} for r in rows])

        await self._repo.writer.run_job(job)

    async def alerts_for(self, user_id: str, *, unacknowledged: bool,
                         limit: int) -> list[AlertRow]:
        """Alerts the account received as guardian or that were sent about it as child,
        newest first."""
        c = guardian_alerts.c
        query = select(*_ALERT).where(or_(c.guardian == user_id, c.child == user_id))
        if unacknowledged:
            query = query.where(c.acknowledged_ms.is_(None))
        query = query.order_by(c.created_ms.desc(), c.alert_id).limit(limit)
        async with self._repo.engine.connect() as conn:
            return [AlertRow(*r) for r in await conn.execute(query)]

    async def acknowledge(self, guardian: str, alert_ids: Sequence[str], at_ms: int) -> int:
        """Mark the guardian's own alerts read; returns how many changed."""

        async def job(conn: AsyncConnection) -> int:
            result = await conn.execute(update(guardian_alerts).where(
                guardian_alerts.c.guardian == guardian,
                guardian_alerts.c.alert_id.in_(list(alert_ids)),
                guardian_alerts.c.acknowledged_ms.is_(None),
            ).values(acknowledged_ms=at_ms))
            return int(result.rowcount or 0)

        return await self._repo.writer.run_job(job)


async def _locked(conn: AsyncConnection, link_id: str) -> LinkRow:
    row = (await conn.execute(select(*_LINK).where(
        guardian_links.c.link_id == link_id).with_for_update())).first()
    if row is None:
        raise NotFound("no such guardian link", code="unknown_guardian_link")
    return LinkRow(*row)
