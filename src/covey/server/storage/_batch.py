"""The hot path's SQL: one group-commit batch of message stores and acks, as synchronous
Core on one connection (SQLite: in the writer thread; PostgreSQL: through run_sync).

Row ids are allocated up front so every insert is a plain executemany (no RETURNING, no
row-at-a-time round trips): on SQLite from in-memory counters, valid because this process
is the file's only writer; on PostgreSQL from the tables' sequences, one query per batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, literal, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from covey.server.storage import schema as t
from covey.server.storage import schema_safety
from covey.server.storage.writer import BatchItem

ARRIVAL_READER = "relay"
ARRIVAL_PURPOSE = "opened on arrival: checked against the franking commitment"

_FIND_SENT = select(t.messages.c.message_id, t.messages.c.commitment,
                    t.messages.c.server_ts_ms).where(
    t.messages.c.sender_device_pk == bindparam("sender"),
    t.messages.c.message_id.in_(bindparam("ids", expanding=True)))
_FIND_HELD = select(t.messages.c.message_id, t.messages.c.sender_device_pk).where(
    t.messages.c.conversation_id == bindparam("conversation"),
    t.messages.c.message_id.in_(bindparam("ids", expanding=True)))
_PG_NEXTVAL = text("SELECT nextval(pg_get_serial_sequence(:table, :column)) "
                   "FROM generate_series(1, :n)")


_MESSAGE_COLUMNS = ("id", "sender_device_pk", "sender_user", "sender_device", "message_id",
                    "conversation_id", "commitment", "server_ts_ms", "participants",
                    "group_session_id", "group_body", "blob_ids")
_MAILBOX_COLUMNS = ("seq", "device_pk", "message_pk", "olm_type", "body", "franking_tag",
                    "expires_ms")


@dataclass(frozen=True)
class _CompiledInserts:
    insert_messages: str
    insert_mailbox: str


_COMPILED: dict[str, _CompiledInserts] = {}


def _positional_insert(conn: Connection, table: str, columns: tuple[str, ...]) -> str:
    stmt = insert(t.metadata.tables[table]).values({c: bindparam(c) for c in columns})
    compiled = stmt.compile(dialect=conn.dialect)
    order = compiled.positiontup
    if order is None or tuple(order) != columns:  # named paramstyle (asyncpg adapts)
        raise RuntimeError(f"unexpected parameter order for {table}: {order}")
    return str(compiled)


def _compiled(conn: Connection) -> _CompiledInserts:
    found = _COMPILED.get(conn.dialect.name)
    if found is None:
        found = _CompiledInserts(_positional_insert(conn, "messages", _MESSAGE_COLUMNS),
                                 _positional_insert(conn, "mailbox", _MAILBOX_COLUMNS))
        _COMPILED[conn.dialect.name] = found
    return found


class IdAllocator:
    """Hands out ids for `messages.id` and `mailbox.seq` ahead of the inserts."""

    def __init__(self, dialect: str) -> None:
        self._sqlite = dialect == "sqlite"
        self._next: dict[str, int] | None = None

    def reset(self) -> None:
        """Forget cached counters (after a rollback they may be ahead of the file)."""
        self._next = None

    def take(self, conn: Connection, table: str, column: str, n: int) -> list[int]:
        if n == 0:
            return []
        if not self._sqlite:
            rows = conn.execute(_PG_NEXTVAL, {"table": table, "column": column, "n": n})
            return sorted(int(r[0]) for r in rows)
        if self._next is None:
            self._next = {name: _sqlite_high_water(conn, name, col) + 1
                          for name, col in (("messages", "id"), ("mailbox", "seq"))}
        first = self._next[table]
        self._next[table] = first + n
        return list(range(first, first + n))


def _sqlite_high_water(conn: Connection, table: str, column: str) -> int:
    # AUTOINCREMENT keeps the largest id ever used in sqlite_sequence, even after deletes.
    seq = conn.execute(text("SELECT seq FROM sqlite_sequence WHERE name = :n"),
                       {"n": table}).scalar()
    top = conn.execute(select(func.max(t.metadata.tables[table].c[column]))).scalar()
    return max(int(seq or 0), int(top or 0))


def commit_batch(conn: Connection, ids: IdAllocator, stores: Sequence[Any],
                 acks: Sequence[Any]) -> None:
    """Store new messages (deduplicated by sender device and message id) and delete acked
    mailbox entries; fills in each item's `result`. Runs inside one transaction."""
    raw = _raw_cursor(conn)
    if stores:
        _store(conn, raw, ids, stores)
    for item in acks:
        if raw is not None:
            # Only "?" placeholders are interpolated; values are bound.
            raw.execute("DELETE FROM mailbox WHERE device_pk = ? AND seq IN "  # noqa: S608
                        f"({_marks(len(item.seqs))})", (item.device_pk, *item.seqs))
            item.result = raw.rowcount
            continue
        res = conn.execute(delete(t.mailbox).where(
            t.mailbox.c.device_pk == item.device_pk, t.mailbox.c.seq.in_(item.seqs)))
        item.result = res.rowcount


def _raw_cursor(conn: Connection) -> Any:
    """On SQLite, the DBAPI cursor of the writer's connection, inside the same transaction.

    The hot statements are a handful of fixed shapes; running them on the cursor skips
    SQLAlchemy's per-statement bookkeeping, which at one fsync per batch is most of the
    writer's CPU. PostgreSQL keeps the Core path (asyncpg through run_sync)."""
    if conn.dialect.name != "sqlite":
        return None
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _store(conn: Connection, raw: Any, ids: IdAllocator, stores: Sequence[Any]) -> None:
    from covey.server.storage.repository import StoreResult

    # Grouped by sender device so the lookup is an index range on the unique key
    # (SQLite does not use the index for a row-value IN list).
    by_sender: dict[int, set[str]] = {}
    for s in stores:
        by_sender.setdefault(s.message.sender_device_pk, set()).add(s.message.message_id)
    known: dict[tuple[int, str], tuple[str, int]] = {}
    for sender, id_set in by_sender.items():
        wanted = sorted(id_set)
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            if raw is not None:
                rows = raw.execute(  # only "?" placeholders are interpolated
                    "SELECT message_id, commitment, server_ts_ms FROM messages WHERE "  # noqa: S608
                    f"sender_device_pk = ? AND message_id IN ({_marks(len(chunk))})",
                    (sender, *chunk)).fetchall()
            else:
                rows = conn.execute(_FIND_SENT, {"sender": sender, "ids": chunk}).all()
            for r in rows:
                known[(sender, r[0])] = (r[1], r[2])
    holders = _holders(conn, raw, stores)
    fresh: list[Any] = []
    for item in stores:
        m = item.message
        key = (m.sender_device_pk, m.message_id)
        prior = known.get(key)
        if prior is None:
            held_by = holders.setdefault((m.conversation_id, m.message_id),
                                         m.sender_device_pk)
            if held_by != m.sender_device_pk:
                # Another device's message in this conversation has this id: a report
                # of one must never be taken for the other.
                item.result = StoreResult("taken", m.server_ts_ms)
                continue
            known[key] = (m.commitment, m.server_ts_ms)
            fresh.append(item)
            item.result = StoreResult("stored", m.server_ts_ms)
        elif prior[0] == m.commitment:
            item.result = StoreResult("duplicate", prior[1])
        else:
            item.result = StoreResult("conflict", prior[1])
    if not fresh:
        return
    message_ids = ids.take(conn, "messages", "id", len(fresh))
    n_entries = sum(len(i.message.entries) for i in fresh)
    seqs = iter(ids.take(conn, "mailbox", "seq", n_entries))
    message_rows: list[tuple[Any, ...]] = []
    mailbox_rows: list[tuple[Any, ...]] = []
    for item, message_pk in zip(fresh, message_ids, strict=True):
        m = item.message
        message_rows.append((
            message_pk, m.sender_device_pk, m.sender_user, m.sender_device, m.message_id,
            m.conversation_id, m.commitment, m.server_ts_ms, json.dumps(m.participants),
            m.group_session_id, m.group_body,
            json.dumps(m.blob_ids) if m.blob_ids else None))
        for e in m.entries:
            e.seq = next(seqs)
            mailbox_rows.append((e.seq, e.device_pk, message_pk, e.olm_type, e.body,
                                 e.franking_tag, m.expires_ms))
    # The Core statements compiled once per dialect, then run as plain DBAPI
    # executemany: the hot path skips per-row parameter processing.
    sql = _compiled(conn)
    if raw is not None:
        raw.executemany(sql.insert_messages, message_rows)
        if mailbox_rows:
            raw.executemany(sql.insert_mailbox, mailbox_rows)
    else:
        conn.exec_driver_sql(sql.insert_messages, message_rows)
        if mailbox_rows:
            conn.exec_driver_sql(sql.insert_mailbox, mailbox_rows)
    _record_blob_refs(conn, fresh)
    copies = [_copy_row(item.message) for item in fresh if item.message.safety_copy is not None]
    if copies:
        conn.execute(insert(schema_safety.safety_copies), copies)
        # Each kept copy is queued for the detectors in the same transaction, so a process
        # that dies before scanning leaves the job behind for the next one.
        conn.execute(insert(schema_safety.scan_jobs), [
            _scan_job_row(item.message) for item in fresh
            if item.message.safety_copy is not None])
        # The relay opened each copy to check it: that read is logged with the copy.
        c = schema_safety.safety_copies.c
        opened = select(c.id, c.message_id, c.conversation_id, c.sender_user,
                        literal(ARRIVAL_READER), literal(ARRIVAL_PURPOSE),
                        c.server_ts_ms).where(
            # Keyed exactly (conversation, sender user, message id): another device of
            # the same sender may have used this id in another conversation, and that
            # copy was not read now.
            tuple_(c.conversation_id, c.sender_user, c.message_id).in_(
                [(row["conversation_id"], row["sender_user"], row["message_id"])
                 for row in copies]))
        reads = schema_safety.safety_copy_reads.c
        conn.execute(insert(schema_safety.safety_copy_reads).from_select(
            [reads.copy_id, reads.message_id, reads.conversation_id, reads.sender_user,
             reads.reader, reads.purpose, reads.read_ms], opened))


def _record_blob_refs(conn: Connection, fresh: Sequence[Any]) -> None:
    """Each declared blob is now referenced by the message's conversation (its
    participants may download it; the purge keeps it), in the message's transaction."""
    newest: dict[tuple[str, str], int] = {}
    for item in fresh:
        m = item.message
        for blob_id in m.blob_ids:
            key = (blob_id, m.conversation_id)
            newest[key] = max(newest.get(key, 0), m.server_ts_ms)
    if not newest:
        return
    dialect_insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    stmt = dialect_insert(t.blob_refs)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.blob_refs.c.blob_id, t.blob_refs.c.conversation_id],
        set_={"last_ref_ms": func.max(t.blob_refs.c.last_ref_ms, stmt.excluded.last_ref_ms)
              if conn.dialect.name == "sqlite"
              else func.greatest(t.blob_refs.c.last_ref_ms, stmt.excluded.last_ref_ms)})
    conn.execute(stmt, [{"blob_id": b, "conversation_id": c, "last_ref_ms": ms}
                        for (b, c), ms in sorted(newest.items())])


def _holders(conn: Connection, raw: Any, stores: Sequence[Any]) -> dict[tuple[str, str], int]:
    """(conversation, message id) → the sender device that already stored it, for the
    batch's ids (index `ix_messages_conversation_msgid`)."""
    by_conversation: dict[str, set[str]] = {}
    for s in stores:
        by_conversation.setdefault(s.message.conversation_id, set()).add(s.message.message_id)
    holders: dict[tuple[str, str], int] = {}
    for conversation, id_set in by_conversation.items():
        wanted = sorted(id_set)
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            if raw is not None:
                rows = raw.execute(  # only "?" placeholders are interpolated
                    "SELECT message_id, sender_device_pk FROM messages WHERE "  # noqa: S608
                    f"conversation_id = ? AND message_id IN ({_marks(len(chunk))})",
                    (conversation, *chunk)).fetchall()
            else:
                rows = conn.execute(_FIND_HELD, {"conversation": conversation,
                                                 "ids": chunk}).all()
            for r in rows:
                holders.setdefault((conversation, str(r[0])), int(r[1]))
    return holders


def _scan_job_row(m: Any) -> dict[str, Any]:
    return {"conversation_id": m.conversation_id, "sender_user": m.sender_user,
            "sender_device": m.sender_device, "message_id": m.message_id,
            "created_ms": m.server_ts_ms, "next_attempt_ms": m.safety_copy.scan_due_ms,
            "attempts": 0, "alerted": 0, "last_error": None}


def _copy_row(m: Any) -> dict[str, Any]:
    copy = m.safety_copy
    return {"message_id": m.message_id, "conversation_id": m.conversation_id,
            "sender_user": m.sender_user, "sender_device": m.sender_device,
            "participants": json.dumps(m.participants), "commitment": m.commitment,
            "key_id": copy.key_id, "sealed": copy.sealed, "server_ts_ms": m.server_ts_ms,
            "expires_ms": copy.expires_ms}


__all__ = ["BatchItem", "IdAllocator", "commit_batch"]
