"""SQL for the safety policy: contacts and contact requests, blocks, mutes, under-16 flags,
group invites, and stored safety copies with their read log (storage/schema_safety.py).

Reads go straight to the engine; writes go through the relay's serial writer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from covey.server.storage import schema as t
from covey.server.storage import schema_reports as r
from covey.server.storage import schema_safety as s
from covey.server.storage.repository import Repository

T = TypeVar("T")


@dataclass(frozen=True)
class ContactRequestRow:
    request_id: str
    requester: str
    target: str
    status: str
    to_under_age: bool
    created_ms: int
    decided_ms: int | None


@dataclass(frozen=True)
class InviteRow:
    group_id: str
    created_by: str
    expires_ms: int


_REQUEST_COLUMNS = (s.contact_requests.c.request_id, s.contact_requests.c.requester,
                    s.contact_requests.c.target, s.contact_requests.c.status,
                    s.contact_requests.c.to_under_age, s.contact_requests.c.created_ms,
                    s.contact_requests.c.decided_ms)


def _request(row: Any) -> ContactRequestRow:
    return ContactRequestRow(str(row[0]), str(row[1]), str(row[2]), str(row[3]), bool(row[4]),
                             int(row[5]), None if row[6] is None else int(row[6]))


def pair(a: str, b: str) -> tuple[str, str]:
    """The contacts table's key for two users: (smaller, larger)."""
    return (a, b) if a < b else (b, a)


class SafetyRepository:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._engine: AsyncEngine = repo.engine

    async def _write(self, job: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        result: T = await self._repo.writer.run_job(job)
        return result

    # --- contacts ---------------------------------------------------------------------

    async def contacts_of(self, user: str) -> dict[str, int]:
        """Contact user id -> since (ms)."""
        c = s.contacts.c
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(c.user_a, c.user_b, c.since_ms).where(
                or_(c.user_a == user, c.user_b == user)))
            return {str(b if a == user else a): int(since) for a, b, since in rows}

    async def are_contacts(self, a: str, b: str) -> bool:
        lo, hi = pair(a, b)
        async with self._engine.connect() as conn:
            found = await conn.scalar(select(s.contacts.c.since_ms).where(
                s.contacts.c.user_a == lo, s.contacts.c.user_b == hi))
            return found is not None

    async def remove_contact(self, a: str, b: str) -> bool:
        lo, hi = pair(a, b)

        async def job(conn: AsyncConnection) -> bool:
            result = await conn.execute(delete(s.contacts).where(
                s.contacts.c.user_a == lo, s.contacts.c.user_b == hi))
            return bool(result.rowcount)

        return await self._write(job)

    # --- contact requests ----------------------------------------------------------------

    async def pending_between(self, requester: str, target: str) -> ContactRequestRow | None:
        c = s.contact_requests.c
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(*_REQUEST_COLUMNS).where(
                c.requester == requester, c.target == target, c.status == "pending"))).first()
            return None if row is None else _request(row)

    async def get_request(self, request_id: str) -> ContactRequestRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(*_REQUEST_COLUMNS).where(
                s.contact_requests.c.request_id == request_id))).first()
            return None if row is None else _request(row)

    async def requests_of(self, user: str) -> list[ContactRequestRow]:
        """Pending requests to or from `user`, oldest first."""
        c = s.contact_requests.c
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(*_REQUEST_COLUMNS).where(
                c.status == "pending", or_(c.requester == user, c.target == user),
            ).order_by(c.created_ms))
            return [_request(row) for row in rows]

    async def requests_to_under_age_since(self, requester: str, since_ms: int) -> int:
        c = s.contact_requests.c
        async with self._engine.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(s.contact_requests)
                                      .where(c.requester == requester, c.to_under_age == 1,
                                             c.created_ms >= since_ms))
            return int(count or 0)

    async def create_request(self, row: ContactRequestRow) -> ContactRequestRow:
        """Insert a pending request unless one is already pending between the two
        (in the same direction); returns the pending one either way."""
        c = s.contact_requests.c

        async def job(conn: AsyncConnection) -> ContactRequestRow:
            existing = (await conn.execute(select(*_REQUEST_COLUMNS).where(
                c.requester == row.requester, c.target == row.target,
                c.status == "pending"))).first()
            if existing is not None:
                return _request(existing)
            await conn.execute(insert(s.contact_requests).values(
                request_id=row.request_id, requester=row.requester, target=row.target,
                status="pending", to_under_age=int(row.to_under_age),
                created_ms=row.created_ms, decided_ms=None))
            return row

        return await self._write(job)

    async def decide_request(self, request_id: str, status: str, now_ms: int) -> bool:
        """Move a pending request to `status`; on "accepted" also record the contact (and
        close a pending request in the other direction). False if it was not pending."""
        c = s.contact_requests.c

        async def job(conn: AsyncConnection) -> bool:
            row = (await conn.execute(select(*_REQUEST_COLUMNS).where(
                c.request_id == request_id))).first()
            if row is None or row[3] != "pending":
                return False
            request = _request(row)
            await conn.execute(update(s.contact_requests).where(c.request_id == request_id)
                               .values(status=status, decided_ms=now_ms))
            if status == "accepted":
                await conn.execute(update(s.contact_requests).where(
                    c.requester == request.target, c.target == request.requester,
                    c.status == "pending").values(status="accepted", decided_ms=now_ms))
                lo, hi = pair(request.requester, request.target)
                known = await conn.scalar(select(s.contacts.c.since_ms).where(
                    s.contacts.c.user_a == lo, s.contacts.c.user_b == hi))
                if known is None:
                    await conn.execute(insert(s.contacts).values(user_a=lo, user_b=hi,
                                                                 since_ms=now_ms))
            return True

        return await self._write(job)

    # --- blocks, mutes and flags ---------------------------------------------------------

    async def blocks_of(self, blocker: str) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(r.blocks.c.blocked).where(
                r.blocks.c.blocker == blocker).order_by(r.blocks.c.created_ms))
            return [str(x[0]) for x in rows]

    async def remove_block(self, blocker: str, blocked: str) -> bool:
        async def job(conn: AsyncConnection) -> bool:
            result = await conn.execute(delete(r.blocks).where(
                r.blocks.c.blocker == blocker, r.blocks.c.blocked == blocked))
            return bool(result.rowcount)

        return await self._write(job)

    async def mutes_of(self, muter: str) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(s.mutes.c.muted).where(
                s.mutes.c.muter == muter).order_by(s.mutes.c.created_ms))
            return [str(x[0]) for x in rows]

    async def set_mute(self, muter: str, muted: str, on: bool, now_ms: int) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(delete(s.mutes).where(s.mutes.c.muter == muter,
                                                     s.mutes.c.muted == muted))
            if on:
                await conn.execute(insert(s.mutes).values(muter=muter, muted=muted,
                                                          created_ms=now_ms))

        await self._write(job)

    async def add_flag(self, flagged: str, flagger: str, kind: str, now_ms: int) -> None:
        async def job(conn: AsyncConnection) -> None:
            known = await conn.scalar(select(s.under_age_flags.c.kind).where(
                s.under_age_flags.c.flagged == flagged,
                s.under_age_flags.c.flagger == flagger))
            if known is None:
                await conn.execute(insert(s.under_age_flags).values(
                    flagged=flagged, flagger=flagger, kind=kind, created_ms=now_ms))

        await self._write(job)

    async def flag_count(self, flagged: str) -> int:
        async with self._engine.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(s.under_age_flags)
                                      .where(s.under_age_flags.c.flagged == flagged))
            return int(count or 0)

    # --- groups ------------------------------------------------------------------------

    async def share_a_group(self, a: str, b: str) -> bool:
        m1, m2 = t.group_members.alias(), t.group_members.alias()
        async with self._engine.connect() as conn:
            found = await conn.scalar(select(m1.c.group_id).join(
                m2, and_(m1.c.group_id == m2.c.group_id)).where(
                m1.c.user_id == a, m2.c.user_id == b).limit(1))
            return found is not None

    async def add_invite(self, token_hash: bytes, group_id: str, created_by: str,
                         now_ms: int, expires_ms: int) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(insert(s.group_invites).values(
                token_hash=token_hash, group_id=group_id, created_by=created_by,
                created_ms=now_ms, expires_ms=expires_ms))

        await self._write(job)

    async def find_invite(self, token_hash: bytes, now_ms: int) -> InviteRow | None:
        i = s.group_invites.c
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(i.group_id, i.created_by, i.expires_ms).where(
                i.token_hash == token_hash, i.expires_ms > now_ms))).first()
            return None if row is None else InviteRow(str(row[0]), str(row[1]), int(row[2]))

    # --- safety copies -------------------------------------------------------------------

    async def record_scan(self, conversation_id: str, message_id: str, sender_user: str,
                          now_ms: int) -> None:
        """Log the detectors' read of a copy as it arrived."""
        c = s.safety_copies.c

        async def job(conn: AsyncConnection) -> None:
            copy_id = await conn.scalar(select(c.id).where(
                c.sender_user == sender_user, c.message_id == message_id,
                c.conversation_id == conversation_id))
            if copy_id is not None:
                await conn.execute(insert(s.safety_copy_reads).values(
                    copy_id=copy_id, message_id=message_id, conversation_id=conversation_id,
                    sender_user=sender_user, reader="detectors", purpose="scan on arrival",
                    read_ms=now_ms))

        await self._write(job)

    async def purge(self, now_ms: int, requests_before_ms: int) -> dict[str, int]:
        """Delete what has outlived its use: safety copies past retention, expired invite
        links, and answered contact requests decided before `requests_before_ms`."""
        requests = s.contact_requests.c

        async def job(conn: AsyncConnection) -> dict[str, int]:
            removed = {}
            for name, stmt in (
                    ("safety copies", delete(s.safety_copies).where(
                        s.safety_copies.c.expires_ms <= now_ms)),
                    ("invite links", delete(s.group_invites).where(
                        s.group_invites.c.expires_ms <= now_ms)),
                    ("answered contact requests", delete(s.contact_requests).where(
                        requests.status != "pending",
                        requests.decided_ms < requests_before_ms))):
                removed[name] = int((await conn.execute(stmt)).rowcount or 0)
            return removed

        return await self._write(job)
