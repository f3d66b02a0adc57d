"""The one repository: every SQL statement the services use, on SQLite or PostgreSQL.

Reads use pooled connections; writes go through the `SerialWriter`, which commits
message sends and acks in batches (group commit) and everything else as single jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from covey.errors import Conflict, NotFound, QuotaExceeded, Unauthorized
from covey.protocol.ids import dm_participants
from covey.server.storage import schema as t
from covey.server.storage._batch import IdAllocator, commit_batch
from covey.server.storage.engine import sqlite_checkpoint, sqlite_sync_engine
from covey.server.storage.writer import BatchItem, SerialWriter

# --- rows ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceRow:
    pk: int
    user_id: str
    device_id: str
    identity_key: str
    signing_key: str
    signature: str


@dataclass(frozen=True, slots=True)
class TokenRow:
    device_pk: int
    user_id: str
    device_id: str
    expires_ms: int


@dataclass(frozen=True, slots=True)
class ChallengeRow:
    device: DeviceRow
    challenge: str
    expires_ms: int
    was_used: bool


@dataclass(frozen=True, slots=True)
class KeyRow:
    key_id: str
    key: str
    signature: str


@dataclass(frozen=True, slots=True)
class ClaimedKey:
    device_pk: int
    key: KeyRow
    fallback: bool
    remaining: int


@dataclass(frozen=True, slots=True)
class GroupRow:
    group_id: str
    name: str
    epoch: int
    members: dict[str, str]  # user_id -> role, in insertion order


@dataclass(frozen=True, slots=True)
class GroupInvitationRow:
    invitation_id: str
    group_id: str
    group_name: str
    user_id: str
    invited_by: str
    created_ms: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class BlobRow:
    blob_id: str
    owner_user: str
    sha256: str
    size: int


@dataclass(slots=True)
class MailboxEntry:
    """One target device of a new message, with its ciphertext and its user's tag."""

    device_pk: int
    user_id: str
    device_id: str
    olm_type: int | None
    body: str | None
    franking_tag: str
    seq: int = 0  # set on commit


@dataclass(frozen=True, slots=True)
class SafetyCopyRecord:
    """A safeguarded message's sealed safety copy, stored with the message, and when
    another worker may take its scan job if this process has not finished it."""

    key_id: str
    sealed: bytes
    expires_ms: int
    scan_due_ms: int


@dataclass(slots=True)
class NewMessage:
    sender_device_pk: int
    sender_user: str
    sender_device: str
    message_id: str
    conversation_id: str
    commitment: str
    server_ts_ms: int
    participants: list[str]
    group_session_id: str | None
    group_body: str | None
    expires_ms: int
    entries: list[MailboxEntry] = field(default_factory=list)
    safety_copy: SafetyCopyRecord | None = None
    blob_ids: list[str] = field(default_factory=list)  # declared; refs written on commit


@dataclass(frozen=True, slots=True)
class StoreResult:
    outcome: Literal["stored", "duplicate", "conflict", "taken"]
    server_ts_ms: int


@dataclass(frozen=True, slots=True)
class PendingRow:
    seq: int
    message_id: str
    conversation_id: str
    sender_user: str
    sender_device: str
    server_ts_ms: int
    commitment: str
    franking_tag: str
    participants: list[str]
    olm_type: int | None
    body: str | None
    group_session_id: str | None
    group_body: str | None
    blob_ids: list[str] = field(default_factory=list)


class _StoreItem(BatchItem):
    __slots__ = ("message",)

    def __init__(self, message: NewMessage) -> None:
        super().__init__()
        self.message = message


class _AckItem(BatchItem):
    __slots__ = ("device_pk", "seqs")

    def __init__(self, device_pk: int, seqs: list[int]) -> None:
        super().__init__()
        self.device_pk = device_pk
        self.seqs = seqs


_DEVICE_COLUMNS = (t.devices.c.id, t.devices.c.user_id, t.devices.c.device_id,
                   t.devices.c.identity_key, t.devices.c.signing_key, t.devices.c.signature)
_PENDING = (
    select(t.mailbox.c.seq, t.messages.c.message_id, t.messages.c.conversation_id,
           t.messages.c.sender_user, t.messages.c.sender_device, t.messages.c.server_ts_ms,
           t.messages.c.commitment, t.mailbox.c.franking_tag, t.messages.c.participants,
           t.mailbox.c.olm_type, t.mailbox.c.body, t.messages.c.group_session_id,
           t.messages.c.group_body, t.messages.c.blob_ids)
    .select_from(t.mailbox.join(t.messages, t.mailbox.c.message_pk == t.messages.c.id))
)


def _device(row: Any) -> DeviceRow:
    return DeviceRow(pk=row[0], user_id=row[1], device_id=row[2], identity_key=row[3],
                     signing_key=row[4], signature=row[5])


class Repository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.writer = SerialWriter(engine, self._run_batch)
        self._ids = IdAllocator(engine.dialect.name)
        self._sync_engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._sync_conn: Connection | None = None
        if engine.dialect.name == "sqlite":
            # The hot batch runs as plain synchronous SQLite in one dedicated thread: one
            # thread hop per batch instead of one per statement through aiosqlite.
            self._sync_engine = sqlite_sync_engine(engine.url)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="covey-db")
        self._checkpointer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.writer.start()
        if self._sync_engine is not None:
            self._checkpointer = asyncio.create_task(self._checkpoint_loop(),
                                                     name="covey-checkpoint")

    async def _checkpoint_loop(self) -> None:
        """Fold the WAL into the database file off the writer's path (the writer has
        auto-checkpoints turned off so no commit pays for one)."""
        path = self.engine.url.database
        while True:
            await asyncio.sleep(1.0)
            if path:
                await asyncio.to_thread(sqlite_checkpoint, path)

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
        await self.writer.stop()
        if self._thread is not None and self._sync_engine is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread,
                                                             self._close_sync)
            self._thread.shutdown(wait=True)
        await self.engine.dispose()

    async def _run_batch(self, items: Sequence[BatchItem]) -> None:
        if self._sync_engine is not None:
            # In the thread the event loop keeps reading frames during the fsync, so the
            # next batch is already filling while this one commits.
            await asyncio.get_running_loop().run_in_executor(self._thread,
                                                             self._run_batch_sync, items)
            return
        async with self.engine.begin() as conn:
            await conn.run_sync(self._commit_batch, items)

    def _run_batch_sync(self, items: Sequence[BatchItem]) -> None:
        assert self._sync_engine is not None
        # One connection for the writer's lifetime: no pool checkout per batch.
        if self._sync_conn is None:
            self._sync_conn = self._sync_engine.connect()
        conn = self._sync_conn
        try:
            with conn.begin():
                self._commit_batch(conn, items)
        except BaseException:
            self._sync_conn = None
            conn.invalidate()
            raise

    def _close_sync(self) -> None:
        if self._sync_conn is not None:
            self._sync_conn.close()
            self._sync_conn = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()

    def _commit_batch(self, conn: Connection, items: Sequence[BatchItem]) -> None:
        stores = [i for i in items if isinstance(i, _StoreItem)]
        acks = [i for i in items if isinstance(i, _AckItem)]
        try:
            commit_batch(conn, self._ids, stores, acks)
        except BaseException:
            self._ids.reset()  # the transaction rolls back: re-read the counters
            raise

    # --- users and devices --------------------------------------------------------

    async def create_user(self, device: DeviceRow, now_ms: int, skeleton: str) -> int:
        """A new account; 409 `handle_taken` when the handle or a look-alike of it (same
        `skeleton`) exists, with the same answer for both."""
        taken = Conflict(f"the handle {device.user_id!r} is taken", code="handle_taken")

        async def job(conn: AsyncConnection) -> int:
            exists = await conn.scalar(select(t.users.c.user_id).where(
                (t.users.c.user_id == device.user_id)
                | (t.users.c.handle_skeleton == skeleton)).limit(1))
            if exists is not None:
                raise taken
            try:
                await conn.execute(insert(t.users).values(
                    user_id=device.user_id, created_ms=now_ms, handle_skeleton=skeleton))
            except IntegrityError as exc:  # another process registered a look-alike first
                raise taken from exc
            return await _insert_device(conn, device, now_ms)

        return await self.writer.run_job(job)

    async def create_link_token(self, user_id: str, token_hash: bytes, expires_ms: int) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(insert(t.link_tokens).values(
                token_hash=token_hash, user_id=user_id, expires_ms=expires_ms, used=0))

        await self.writer.run_job(job)

    async def add_device_with_link_token(self, token_hash: bytes, device: DeviceRow,
                                         now_ms: int) -> int:
        """Consume the link token and add the device to its user, in one transaction."""

        async def job(conn: AsyncConnection) -> int:
            row = (await conn.execute(
                select(t.link_tokens.c.user_id, t.link_tokens.c.expires_ms,
                       t.link_tokens.c.used).where(t.link_tokens.c.token_hash == token_hash)
            )).first()
            if row is None:
                raise Unauthorized("unknown link token", code="bad_link_token")
            if row.used:
                raise Unauthorized("this link token was already used", code="link_token_used")
            if row.expires_ms <= now_ms:
                raise Unauthorized("this link token has expired", code="link_token_expired")
            if row.user_id != device.user_id:
                raise Unauthorized("the link token belongs to another user",
                                   code="bad_link_token")
            taken = await conn.scalar(select(t.devices.c.id).where(
                t.devices.c.user_id == device.user_id,
                t.devices.c.device_id == device.device_id))
            if taken is not None:
                raise Conflict("this device id already exists", code="device_exists")
            await conn.execute(update(t.link_tokens).where(
                t.link_tokens.c.token_hash == token_hash).values(used=1))
            return await _insert_device(conn, device, now_ms)

        return await self.writer.run_job(job)

    async def user_exists(self, user_id: str) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.scalar(select(t.users.c.user_id).where(
                t.users.c.user_id == user_id))
        return found is not None

    async def existing_users(self, user_ids: Sequence[str]) -> set[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t.users.c.user_id).where(
                t.users.c.user_id.in_(list(user_ids))))
            return {r[0] for r in rows}

    async def user_devices(self, user_id: str) -> list[DeviceRow]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(*_DEVICE_COLUMNS).where(
                t.devices.c.user_id == user_id, t.devices.c.removed_ms.is_(None))
                .order_by(t.devices.c.id))
            return [_device(r) for r in rows]

    async def get_device(self, user_id: str, device_id: str) -> DeviceRow | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(*_DEVICE_COLUMNS).where(
                t.devices.c.user_id == user_id, t.devices.c.device_id == device_id,
                t.devices.c.removed_ms.is_(None)))).first()
        return None if row is None else _device(row)

    async def remove_device(self, user_id: str, device_id: str, now_ms: int) -> bool:
        """Unlink a device: marked removed (its sent messages stay, for reports), its
        tokens, keys and undelivered mailbox deleted. False if there is no such device."""

        async def job(conn: AsyncConnection) -> bool:
            pk = (await conn.execute(select(t.devices.c.id).where(
                t.devices.c.user_id == user_id, t.devices.c.device_id == device_id,
                t.devices.c.removed_ms.is_(None)))).scalar()
            if pk is None:
                return False
            await conn.execute(update(t.devices).where(t.devices.c.id == pk)
                               .values(removed_ms=now_ms))
            for table in (t.tokens, t.one_time_keys, t.fallback_keys, t.mailbox):
                await conn.execute(delete(table).where(table.c.device_pk == pk))
            return True

        return bool(await self.writer.run_job(job))

    # --- login -----------------------------------------------------------------------

    async def create_challenge(self, challenge_id: str, device_pk: int, challenge: str,
                               expires_ms: int) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(insert(t.challenges).values(
                challenge_id=challenge_id, device_pk=device_pk, challenge=challenge,
                expires_ms=expires_ms, used=0))

        await self.writer.run_job(job)

    async def use_challenge(self, challenge_id: str) -> ChallengeRow | None:
        """Mark the challenge used and return it as it was before (None if unknown)."""

        async def job(conn: AsyncConnection) -> ChallengeRow | None:
            row = (await conn.execute(
                select(t.challenges.c.challenge, t.challenges.c.expires_ms,
                       t.challenges.c.used, *_DEVICE_COLUMNS)
                .select_from(t.challenges.join(
                    t.devices, t.challenges.c.device_pk == t.devices.c.id))
                .where(t.challenges.c.challenge_id == challenge_id))).first()
            if row is None:
                return None
            if not row.used:
                await conn.execute(update(t.challenges).where(
                    t.challenges.c.challenge_id == challenge_id).values(used=1))
            return ChallengeRow(device=_device(row[3:]), challenge=row.challenge,
                                expires_ms=row.expires_ms, was_used=bool(row.used))

        return await self.writer.run_job(job)

    async def create_token(self, token_hash: bytes, device_pk: int, expires_ms: int) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(insert(t.tokens).values(
                token_hash=token_hash, device_pk=device_pk, expires_ms=expires_ms))

        await self.writer.run_job(job)

    async def revoke_user_tokens(self, user_id: str) -> None:
        """Delete every bearer token of every device of `user_id` (suspension)."""

        async def job(conn: AsyncConnection) -> None:
            await conn.execute(delete(t.tokens).where(t.tokens.c.device_pk.in_(
                select(t.devices.c.id).where(t.devices.c.user_id == user_id))))

        await self.writer.run_job(job)

    async def get_token(self, token_hash: bytes) -> TokenRow | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                select(t.tokens.c.device_pk, t.devices.c.user_id, t.devices.c.device_id,
                       t.tokens.c.expires_ms)
                .select_from(t.tokens.join(t.devices, t.tokens.c.device_pk == t.devices.c.id))
                .where(t.tokens.c.token_hash == token_hash,
                       t.devices.c.removed_ms.is_(None)))).first()
        if row is None:
            return None
        return TokenRow(device_pk=row[0], user_id=row[1], device_id=row[2], expires_ms=row[3])

    # --- keys ------------------------------------------------------------------------

    async def upload_keys(self, device_pk: int, one_time: Sequence[KeyRow],
                          fallback: KeyRow | None) -> tuple[int, bool]:
        """Store new one-time keys (ids already stored are kept as they are) and replace
        the fallback key; returns the new (one-time count, has fallback)."""

        async def job(conn: AsyncConnection) -> tuple[int, bool]:
            if one_time:
                ids = [k.key_id for k in one_time]
                existing = {r[0] for r in await conn.execute(
                    select(t.one_time_keys.c.key_id).where(
                        t.one_time_keys.c.device_pk == device_pk,
                        t.one_time_keys.c.key_id.in_(ids)))}
                seen: set[str] = set()
                fresh = []
                for k in one_time:
                    if k.key_id in existing or k.key_id in seen:
                        continue
                    seen.add(k.key_id)
                    fresh.append({"device_pk": device_pk, "key_id": k.key_id, "key": k.key,
                                  "signature": k.signature})
                if fresh:
                    await conn.execute(insert(t.one_time_keys), fresh)
            if fallback is not None:
                await conn.execute(delete(t.fallback_keys).where(
                    t.fallback_keys.c.device_pk == device_pk))
                await conn.execute(insert(t.fallback_keys).values(
                    device_pk=device_pk, key_id=fallback.key_id, key=fallback.key,
                    signature=fallback.signature))
            return await _key_count(conn, device_pk)

        return await self.writer.run_job(job)

    async def key_count(self, device_pk: int) -> tuple[int, bool]:
        async with self.engine.connect() as conn:
            return await _key_count(conn, device_pk)

    async def claim_keys(self, device_pks: Sequence[int]) -> list[ClaimedKey]:
        """Remove and return one one-time key per device (or its fallback key, kept)."""

        async def job(conn: AsyncConnection) -> list[ClaimedKey]:
            claimed = []
            for pk in device_pks:
                # One statement per device: the delete and the read are one atomic step,
                # and SKIP LOCKED lets concurrent PostgreSQL claims take different keys.
                pick = (select(t.one_time_keys.c.id)
                        .where(t.one_time_keys.c.device_pk == pk)
                        .order_by(t.one_time_keys.c.id).limit(1)
                        .with_for_update(skip_locked=True).scalar_subquery())
                row = (await conn.execute(
                    delete(t.one_time_keys).where(t.one_time_keys.c.id == pick).returning(
                        t.one_time_keys.c.key_id, t.one_time_keys.c.key,
                        t.one_time_keys.c.signature))).first()
                if row is not None:
                    remaining, _ = await _key_count(conn, pk)
                    claimed.append(ClaimedKey(pk, KeyRow(row[0], row[1], row[2]), False,
                                              remaining))
                    continue
                fb = (await conn.execute(
                    select(t.fallback_keys.c.key_id, t.fallback_keys.c.key,
                           t.fallback_keys.c.signature).where(
                        t.fallback_keys.c.device_pk == pk))).first()
                if fb is not None:
                    claimed.append(ClaimedKey(pk, KeyRow(fb[0], fb[1], fb[2]), True, 0))
            return claimed

        return await self.writer.run_job(job)

    # --- groups ----------------------------------------------------------------------

    async def create_group(self, group_id: str, name: str, members: dict[str, str],
                           now_ms: int) -> GroupRow:
        async def job(conn: AsyncConnection) -> GroupRow:
            await conn.execute(insert(t.groups).values(group_id=group_id, name=name, epoch=0,
                                                       created_ms=now_ms))
            await conn.execute(insert(t.group_members), [
                {"group_id": group_id, "user_id": u, "role": r} for u, r in members.items()])
            return GroupRow(group_id, name, 0, dict(members))

        return await self.writer.run_job(job)

    async def get_group(self, group_id: str) -> GroupRow | None:
        async with self.engine.connect() as conn:
            return await _load_group(conn, group_id)

    async def groups_of_user(self, user_id: str) -> list[GroupRow]:
        async with self.engine.connect() as conn:
            ids = [r[0] for r in await conn.execute(
                select(t.group_members.c.group_id).where(t.group_members.c.user_id == user_id)
                .order_by(t.group_members.c.group_id))]
            found = [await _load_group(conn, g) for g in ids]
        return [g for g in found if g is not None]

    async def change_membership(self, group_id: str, expected_epoch: int, *,
                                add: tuple[str, str] | None = None,
                                remove: str | None = None) -> GroupRow:
        """Apply one membership change if the group is still at `expected_epoch`."""

        async def job(conn: AsyncConnection) -> GroupRow:
            bumped = await conn.execute(
                update(t.groups).where(t.groups.c.group_id == group_id,
                                       t.groups.c.epoch == expected_epoch)
                .values(epoch=t.groups.c.epoch + 1))
            if bumped.rowcount != 1:
                raise Conflict("the group changed meanwhile, retry", code="group_changed")
            if add is not None:
                await conn.execute(insert(t.group_members).values(
                    group_id=group_id, user_id=add[0], role=add[1]))
                # A member is no longer invited (an accepted invitation ends here).
                await conn.execute(delete(t.group_invitations).where(
                    t.group_invitations.c.group_id == group_id,
                    t.group_invitations.c.user_id == add[0]))
            if remove is not None:
                await conn.execute(delete(t.group_members).where(
                    t.group_members.c.group_id == group_id,
                    t.group_members.c.user_id == remove))
            group = await _load_group(conn, group_id)
            if group is None:
                raise NotFound("no such group", code="unknown_group")
            return group

        return await self.writer.run_job(job)

    # --- group invitations -------------------------------------------------------------

    async def invite_to_group(self, invitation: GroupInvitationRow,
                              now_ms: int) -> GroupInvitationRow:
        """Store the invitation, or return the pending one this account already has for
        this group (an expired one is replaced)."""

        async def job(conn: AsyncConnection) -> GroupInvitationRow:
            gi = t.group_invitations.c
            await conn.execute(delete(t.group_invitations).where(
                gi.group_id == invitation.group_id, gi.user_id == invitation.user_id,
                gi.expires_ms <= now_ms))
            existing = await _invitations(conn, and_(gi.group_id == invitation.group_id,
                                                     gi.user_id == invitation.user_id))
            if existing:
                return existing[0]
            await conn.execute(insert(t.group_invitations).values(
                invitation_id=invitation.invitation_id, group_id=invitation.group_id,
                user_id=invitation.user_id, invited_by=invitation.invited_by,
                created_ms=invitation.created_ms, expires_ms=invitation.expires_ms))
            return invitation

        return await self.writer.run_job(job)

    async def group_invitations_of(self, user_id: str, now_ms: int) -> list[GroupInvitationRow]:
        gi = t.group_invitations.c
        async with self.engine.connect() as conn:
            return await _invitations(conn, and_(gi.user_id == user_id, gi.expires_ms > now_ms))

    async def group_invitation(self, invitation_id: str,
                               now_ms: int) -> GroupInvitationRow | None:
        gi = t.group_invitations.c
        async with self.engine.connect() as conn:
            found = await _invitations(conn, and_(gi.invitation_id == invitation_id,
                                                  gi.expires_ms > now_ms))
        return found[0] if found else None

    async def invited_to_group(self, group_id: str, now_ms: int) -> list[str]:
        gi = t.group_invitations.c
        async with self.engine.connect() as conn:
            return [str(r[0]) for r in await conn.execute(
                select(gi.user_id).where(gi.group_id == group_id, gi.expires_ms > now_ms)
                .order_by(gi.user_id))]

    async def delete_group_invitation(self, invitation_id: str) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(delete(t.group_invitations).where(
                t.group_invitations.c.invitation_id == invitation_id))

        await self.writer.run_job(job)

    # --- messages and mailbox --------------------------------------------------------

    def submit_message(self, message: NewMessage) -> Any:
        """Queue a message and its mailbox entries for the next group commit; the future
        gives a `StoreResult` once durable (entries' `seq` set). Submission order is seq
        order; a resend of a stored (sender device, message id) is `duplicate`, or
        `conflict` if its commitment differs; an id that the conversation already holds
        from another sender device is `taken`."""
        return self.writer.submit(_StoreItem(message))

    def submit_ack(self, device_pk: int, seqs: list[int]) -> Any:
        return self.writer.submit(_AckItem(device_pk, seqs))

    async def ack(self, device_pk: int, seqs: list[int]) -> int:
        removed: int = await self.writer.submit(_AckItem(device_pk, seqs))
        return removed

    async def pending(self, device_pk: int, after: int, limit: int,
                      now_ms: int) -> list[PendingRow]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                _PENDING.where(t.mailbox.c.device_pk == device_pk, t.mailbox.c.seq > after,
                               t.mailbox.c.expires_ms > now_ms)
                .order_by(t.mailbox.c.seq).limit(limit))
            return [PendingRow(seq=r[0], message_id=r[1], conversation_id=r[2],
                               sender_user=r[3], sender_device=r[4], server_ts_ms=r[5],
                               commitment=r[6], franking_tag=r[7],
                               participants=json.loads(r[8]), olm_type=r[9], body=r[10],
                               group_session_id=r[11], group_body=r[12],
                               blob_ids=json.loads(r[13]) if r[13] else []) for r in rows]

    async def purge_expired(self, now_ms: int, message_retention_ms: int) -> int:
        """Drop expired mailbox entries, challenges, tokens, link tokens and group
        invitations, and messages that are older than the retention and have no mailbox
        entry left."""

        async def job(conn: AsyncConnection) -> int:
            res = await conn.execute(delete(t.mailbox).where(t.mailbox.c.expires_ms <= now_ms))
            await conn.execute(delete(t.challenges).where(t.challenges.c.expires_ms <= now_ms))
            await conn.execute(delete(t.tokens).where(t.tokens.c.expires_ms <= now_ms))
            await conn.execute(delete(t.link_tokens).where(
                t.link_tokens.c.expires_ms <= now_ms))
            await conn.execute(delete(t.group_invitations).where(
                t.group_invitations.c.expires_ms <= now_ms))
            orphan = ~select(t.mailbox.c.seq).where(
                t.mailbox.c.message_pk == t.messages.c.id).exists()
            await conn.execute(delete(t.messages).where(
                and_(t.messages.c.server_ts_ms <= now_ms - message_retention_ms, orphan)))
            return int(res.rowcount)

        return await self.writer.run_job(job)

    # --- blobs -----------------------------------------------------------------------

    async def insert_blob(self, blob: BlobRow, now_ms: int, quota_bytes: int) -> None:
        """Store the blob's row unless the owner's stored bytes would pass `quota_bytes`
        (checked in the writer's transaction, so concurrent uploads cannot both slip in)."""

        async def job(conn: AsyncConnection) -> None:
            used = await _blob_bytes(conn, blob.owner_user)
            if used + blob.size > quota_bytes:
                raise QuotaExceeded(
                    f"this account may store at most {quota_bytes} bytes of attachments",
                    details={"quota_bytes": quota_bytes, "used_bytes": used})
            await conn.execute(insert(t.blobs).values(
                blob_id=blob.blob_id, owner_user=blob.owner_user, sha256=blob.sha256,
                size=blob.size, created_ms=now_ms))

        await self.writer.run_job(job)

    async def blob_bytes(self, owner_user: str) -> int:
        """Bytes of blobs `owner_user` has stored."""
        async with self.engine.connect() as conn:
            return await _blob_bytes(conn, owner_user)

    async def get_blob(self, blob_id: str) -> BlobRow | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(
                t.blobs.c.blob_id, t.blobs.c.owner_user, t.blobs.c.sha256, t.blobs.c.size)
                .where(t.blobs.c.blob_id == blob_id))).first()
        return None if row is None else BlobRow(row[0], row[1], row[2], row[3])


    async def readable_blob(self, blob_id: str, user_id: str) -> BlobRow | None:
        """The blob's row when `user_id` may download it: its uploader, or a participant
        (a direct conversation's user, a group's current member) of a conversation it
        was declared in. None otherwise, exactly as for an unknown blob."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(
                t.blobs.c.blob_id, t.blobs.c.owner_user, t.blobs.c.sha256, t.blobs.c.size)
                .where(t.blobs.c.blob_id == blob_id))).first()
            conversations = [str(r[0]) for r in await conn.execute(
                select(t.blob_refs.c.conversation_id)
                .where(t.blob_refs.c.blob_id == blob_id))]
            groups = []
            allowed = row is not None and row[1] == user_id
            for conversation in conversations:
                pair = dm_participants(conversation)
                if pair is None:
                    groups.append(conversation)
                elif user_id in pair:
                    allowed = True
            if groups and not allowed:
                member = await conn.scalar(select(func.count()).select_from(t.group_members)
                                           .where(t.group_members.c.group_id.in_(groups),
                                                  t.group_members.c.user_id == user_id))
                allowed = bool(member)
        if row is None or not allowed:
            return None
        return BlobRow(row[0], row[1], row[2], row[3])

    async def blob_declared_in(self, blob_id: str, conversations: list[str]) -> bool:
        """Whether a message of one of `conversations` declared the blob."""
        if not conversations:
            return False
        async with self.engine.connect() as conn:
            found = await conn.scalar(select(func.count()).select_from(t.blob_refs).where(
                t.blob_refs.c.blob_id == blob_id,
                t.blob_refs.c.conversation_id.in_(conversations)))
        return bool(found)

    async def purge_blobs(self, unreferenced_before_ms: int,
                          referenced_before_ms: int) -> list[str]:
        """Forget the blobs nobody references: uploaded before `unreferenced_before_ms`
        and never declared in a message, or whose newest reference is older than
        `referenced_before_ms`. Returns their ids (the caller deletes the files)."""

        async def job(conn: AsyncConnection) -> list[str]:
            refs = t.blob_refs.c
            live = select(refs.blob_id).where(refs.blob_id == t.blobs.c.blob_id,
                                              refs.last_ref_ms > referenced_before_ms)
            ids = [str(r[0]) for r in await conn.execute(
                select(t.blobs.c.blob_id).where(
                    t.blobs.c.created_ms <= unreferenced_before_ms, ~live.exists())
                .limit(1000))]
            if ids:
                await conn.execute(delete(t.blob_refs).where(refs.blob_id.in_(ids)))
                await conn.execute(delete(t.blobs).where(t.blobs.c.blob_id.in_(ids)))
            return ids

        return await self.writer.run_job(job)


async def _blob_bytes(conn: AsyncConnection, owner_user: str) -> int:
    used = await conn.scalar(select(func.coalesce(func.sum(t.blobs.c.size), 0))
                             .where(t.blobs.c.owner_user == owner_user))
    return int(used or 0)


async def _insert_device(conn: AsyncConnection, device: DeviceRow, now_ms: int) -> int:
    res = await conn.execute(insert(t.devices).values(
        user_id=device.user_id, device_id=device.device_id,
        identity_key=device.identity_key, signing_key=device.signing_key,
        signature=device.signature, created_ms=now_ms).returning(t.devices.c.id))
    return int(res.scalar_one())


async def _key_count(conn: AsyncConnection, device_pk: int) -> tuple[int, bool]:
    count = await conn.scalar(select(func.count()).select_from(t.one_time_keys).where(
        t.one_time_keys.c.device_pk == device_pk))
    fb = await conn.scalar(select(t.fallback_keys.c.key_id).where(
        t.fallback_keys.c.device_pk == device_pk))
    return int(count or 0), fb is not None


async def _invitations(conn: AsyncConnection, where: Any) -> list[GroupInvitationRow]:
    gi = t.group_invitations.c
    rows = await conn.execute(
        select(gi.invitation_id, gi.group_id, t.groups.c.name, gi.user_id, gi.invited_by,
               gi.created_ms, gi.expires_ms)
        .select_from(t.group_invitations.join(t.groups,
                                              t.groups.c.group_id == gi.group_id))
        .where(where).order_by(gi.created_ms, gi.invitation_id))
    return [GroupInvitationRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]),
                               int(r[5]), int(r[6])) for r in rows]


async def _load_group(conn: AsyncConnection, group_id: str) -> GroupRow | None:
    g = (await conn.execute(select(t.groups.c.name, t.groups.c.epoch).where(
        t.groups.c.group_id == group_id))).first()
    if g is None:
        return None
    members = {r[0]: r[1] for r in await conn.execute(
        select(t.group_members.c.user_id, t.group_members.c.role).where(
            t.group_members.c.group_id == group_id).order_by(t.group_members.c.user_id))}
    return GroupRow(group_id, g[0], int(g[1]), members)
