"""Cluster membership in PostgreSQL: advisory locks tell a lone server from a cluster
node, lease rows name the nodes, and `cluster_keys` holds the key ids all nodes share.

A node holds one session-level advisory lock on its own connection for as long as it
runs: exclusive for a server without NATS (it owns the database), shared for a cluster
node. PostgreSQL drops the lock the moment the process dies, even by SIGKILL, so a
restart never waits for a lease to time out; the lease rows are for naming nodes and
counting peers."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from covey.server.storage.schema_cluster import cluster_keys, cluster_nodes, rate_buckets

# "Covey" in ASCII: the advisory lock every process on one database takes.
_MEMBERSHIP_LOCK = 0x436F766579
_KEYS_LOCK = _MEMBERSHIP_LOCK + 1
_LEADER_LOCK = _MEMBERSHIP_LOCK + 2  # the node that runs once-per-cluster work


@dataclass(frozen=True, slots=True)
class NodeRow:
    node_id: str
    clustered: bool
    listen: str
    heartbeat_ms: int


class MembershipLock:
    """The advisory lock on a connection of its own, held until `release()`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    async def acquire(self, *, shared: bool) -> bool:
        """Take the lock (shared for a cluster node); False when another process holds it
        in a conflicting mode."""
        await self.release()
        conn = await self._engine.connect()
        fn = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        try:
            got = bool(await conn.scalar(text(f"SELECT {fn}(:k)"), {"k": _MEMBERSHIP_LOCK}))
            await conn.commit()  # a session lock outlives the transaction
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def try_lead(self) -> bool:
        """Take the leader lock on the same session (kept until the session ends)."""
        if self._conn is None:
            return False
        got = bool(await self._conn.scalar(text("SELECT pg_try_advisory_lock(:k)"),
                                           {"k": _LEADER_LOCK}))
        await self._conn.commit()
        return got

    async def alive(self) -> bool:
        """Whether the lock's connection still answers (if not, the lock is gone)."""
        if self._conn is None:
            return False
        try:
            await self._conn.scalar(text("SELECT 1"))
            await self._conn.commit()
            return True
        except Exception:
            await self.release()
            return False

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()  # closing the session releases its advisory locks
            with contextlib.suppress(Exception):
                await conn.invalidate()


async def try_lock_briefly(engine: AsyncEngine, *, shared: bool) -> bool:
    """Whether the membership lock could be taken now (then released at once)."""
    lock = MembershipLock(engine)
    try:
        return await lock.acquire(shared=shared)
    finally:
        await lock.release()


async def tables_exist(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return bool(await conn.scalar(text("SELECT to_regclass('cluster_keys') IS NOT NULL")))


async def upsert_node(engine: AsyncEngine, row: NodeRow, started_ms: int) -> None:
    async with engine.begin() as conn:
        stmt = pg_insert(cluster_nodes).values(
            node_id=row.node_id, clustered=row.clustered, listen=row.listen,
            started_ms=started_ms, heartbeat_ms=row.heartbeat_ms)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=[cluster_nodes.c.node_id],
            set_={"heartbeat_ms": stmt.excluded.heartbeat_ms,
                  "clustered": stmt.excluded.clustered}))


async def remove_node(engine: AsyncEngine, node_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(cluster_nodes).where(cluster_nodes.c.node_id == node_id))


async def live_nodes(engine: AsyncEngine, since_ms: int) -> list[NodeRow]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(cluster_nodes.c.node_id, cluster_nodes.c.clustered,
                   cluster_nodes.c.listen, cluster_nodes.c.heartbeat_ms)
            .where(cluster_nodes.c.heartbeat_ms >= since_ms)
            .order_by(cluster_nodes.c.heartbeat_ms.desc()))
        return [NodeRow(r.node_id, bool(r.clustered), r.listen, int(r.heartbeat_ms))
                for r in rows]


async def forget_nodes_before(engine: AsyncEngine, before_ms: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(cluster_nodes).where(cluster_nodes.c.heartbeat_ms < before_ms))


async def recorded_keys(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(cluster_keys.c.name, cluster_keys.c.key_id))
        return {r.name: r.key_id for r in rows}


async def record_keys(engine: AsyncEngine, ids: dict[str, str], now_ms: int, *,
                      replace: bool) -> dict[str, str]:
    """Record key ids not yet recorded (all of them when `replace`); returns the
    cluster's ids as they were before, read under a lock so two nodes agree."""
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _KEYS_LOCK})
        before = {r.name: r.key_id for r in await conn.execute(
            select(cluster_keys.c.name, cluster_keys.c.key_id))}
        for name, key_id in ids.items():
            if name in before and not replace:
                continue
            stmt = pg_insert(cluster_keys).values(name=name, key_id=key_id,
                                                  recorded_ms=now_ms)
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=[cluster_keys.c.name],
                set_={"key_id": stmt.excluded.key_id,
                      "recorded_ms": stmt.excluded.recorded_ms}))
        return before


async def database_reachable(engine: AsyncEngine, timeout_s: float = 2.0) -> bool:
    async def probe() -> None:
        async with engine.connect() as conn:
            await conn.scalar(text("SELECT 1"))

    try:
        await asyncio.wait_for(probe(), timeout_s)
        return True
    except Exception:
        return False


@dataclass(frozen=True, slots=True)
class Settlement:
    action: str
    key: str
    credit: float  # the node's unspent share, back into the bucket (negative: a debt)
    want: float  # tokens the node would like to hold next
    per_second: float
    burst: int


async def settle_shares(engine: AsyncEngine, settlements: list[Settlement],
                        now_ms: int) -> dict[tuple[str, str], float]:
    """Refill each shared bucket for the time passed, add the node's credit, and grant it
    up to `want` of what is there; returns the grants. A new bucket holds only the
    credit: its burst starts shared out among the nodes (SharedRateLimiter)."""
    granted: dict[tuple[str, str], float] = {}
    c = rate_buckets.c
    async with engine.begin() as conn:
        for item in sorted(settlements, key=lambda s: (s.action, s.key)):  # lock order
            stmt = pg_insert(rate_buckets).values(
                action=item.action, key=item.key,
                tokens=min(float(item.burst), item.credit), updated_ms=now_ms)
            refilled = c.tokens + func.greatest(0, now_ms - c.updated_ms) * (
                item.per_second / 1000.0)
            upsert = stmt.on_conflict_do_update(
                index_elements=[c.action, c.key],
                set_={"tokens": func.least(float(item.burst), refilled + item.credit),
                      "updated_ms": func.greatest(c.updated_ms, now_ms)}
            ).returning(c.tokens)
            tokens = float(await conn.scalar(upsert) or 0.0)
            grant = max(0.0, min(item.want, tokens))
            if grant > 0:
                await conn.execute(update(rate_buckets).where(
                    c.action == item.action, c.key == item.key).values(
                        tokens=c.tokens - grant))
            granted[(item.action, item.key)] = grant
    return granted


async def forget_full_buckets(engine: AsyncEngine, before_ms: int) -> None:
    """Buckets untouched for long have refilled: their rows carry nothing."""
    async with engine.begin() as conn:
        await conn.execute(delete(rate_buckets).where(rate_buckets.c.updated_ms < before_ms))
