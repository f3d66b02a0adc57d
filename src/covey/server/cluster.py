"""Cluster membership of one `covey server` process (docs/operations.md, "Scaling out").

On PostgreSQL every process takes the membership lock: a server without `--nats-url`
owns the database alone, cluster nodes share it. A node also proves it has the
cluster's keys (ids compared through the database) and renews a lease row that names
it. SQLite is always one process: none of this runs there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from covey.server.services._common import now_ms
from covey.server.storage import cluster_repo, is_sqlite
from covey.settings import Settings

log = logging.getLogger(__name__)

_NATS_HINT = "--nats-url nats://HOST:4222 (COVEY_NATS_URL)"


class ClusterRefused(Exception):
    """This process must not run on this database; the message says why, in one line."""


def new_node_id() -> str:
    return "n" + secrets.token_hex(4)


def key_files(settings: Settings) -> dict[str, Path]:
    """Every key a node reads from the shared data directory, by name."""
    return {
        "server.key": settings.resolved_server_key_file(),
        "policy-signing.key": settings.resolved_policy_signing_key_file(),
        "safety-service.key": settings.resolved_safety_service_key_file(),
        "attestation.key": settings.data_dir / "attestation.key",
        "reports.key": settings.data_dir / "reports.key",
    }


def key_id(name: str, data: bytes) -> str:
    """A fingerprint that names a key without revealing it."""
    return hashlib.sha256(b"covey key id\x00" + name.encode() + b"\x00" + data).hexdigest()[:32]


def local_key_ids(settings: Settings) -> dict[str, str | None]:
    """This node's key ids; None for a key file it does not have (yet)."""
    ids: dict[str, str | None] = {}
    for name, path in key_files(settings).items():
        try:
            ids[name] = key_id(name, path.read_bytes())
        except FileNotFoundError:
            ids[name] = None
    return ids


def _other_node(rows: list[cluster_repo.NodeRow], node_id: str | None) -> str:
    for row in rows:
        if row.node_id != node_id:
            return f" (node {row.node_id} at {row.listen})"
    return ""


def _differing(local: dict[str, str | None], cluster: dict[str, str]) -> list[str]:
    return sorted(name for name, kid in local.items()
                  if name in cluster and kid != cluster[name])


def _keys_message(names: list[str], settings: Settings) -> str:
    return (f"this node's keys differ from the cluster's ({', '.join(names)} in "
            f"{settings.data_dir}): every node must use the same data directory (a shared "
            f"volume) as the nodes already running on this database")


async def _lock_problem(engine: AsyncEngine, settings: Settings, *, shared: bool,
                        got: bool, node_id: str | None) -> str | None:
    if got:
        return None
    since = now_ms() - int(settings.cluster_heartbeat_s * 3000)
    other = _other_node(await cluster_repo.live_nodes(engine, since), node_id)
    if shared:
        return (f"a covey server without --nats-url is running on this database{other}: "
                f"stop it, or restart it with {_NATS_HINT} to run both as a cluster")
    return (f"another covey server is running on this database{other}: one process owns "
            f"a database unless every node runs with {_NATS_HINT}")


async def preflight_problem(settings: Settings) -> str | None:
    """Why this process may not start on its database (one line), before anything is
    created; None when it may. `Membership.join` checks again and holds the lock."""
    from covey.server.storage import create_engine

    if is_sqlite(settings.database_url):
        if settings.nats_url is not None:
            return ("--nats-url needs a PostgreSQL --database-url: a SQLite database "
                    "belongs to one process")
        return None
    engine = create_engine(settings.database_url)
    try:
        if not await cluster_repo.tables_exist(engine):
            return None  # no process of this version has run here yet
        shared = settings.nats_url is not None
        got = await cluster_repo.try_lock_briefly(engine, shared=shared)
        problem = await _lock_problem(engine, settings, shared=shared, got=got, node_id=None)
        if problem is None and shared:
            names = _differing(local_key_ids(settings), await cluster_repo.recorded_keys(engine))
            if names:
                problem = _keys_message(names, settings)
        return problem
    finally:
        await engine.dispose()


class Membership:
    """This process's lock, lease row and heartbeat on a PostgreSQL database."""

    def __init__(self, engine: AsyncEngine, settings: Settings, node_id: str) -> None:
        self.node_id = node_id
        self.clustered = settings.nats_url is not None
        self._engine = engine
        self._settings = settings
        self._lock = cluster_repo.MembershipLock(engine)
        self._started_ms = now_ms()
        self._listen = f"{settings.host}:{settings.port}"
        self._task: asyncio.Task[None] | None = None
        self.peers: list[str] = []  # other live nodes, renewed with each heartbeat
        self.on_peers: Callable[[int], None] | None = None
        # The leader runs the once-per-cluster work; when it dies, its session's lock
        # goes with it and the next node to try (within a heartbeat) takes over.
        self.leader = False
        self.on_leader: Callable[[bool], None] | None = None

    async def join(self) -> None:
        """Take the membership lock and write the lease row, or raise `ClusterRefused`."""
        got = await self._lock.acquire(shared=self.clustered)
        problem = await _lock_problem(self._engine, self._settings, shared=self.clustered,
                                      got=got, node_id=self.node_id)
        if problem is not None:
            raise ClusterRefused(problem)
        await self._beat()
        await self._lead()

    async def _lead(self) -> None:
        leader = self.leader or await self._lock.try_lead()
        if leader != self.leader:
            self.leader = leader
            log.info("this node %s the cluster's leader", "is now" if leader else "is no longer")
            if self.on_leader is not None:
                self.on_leader(leader)

    async def check_keys(self) -> None:
        """Record this node's key ids, or raise `ClusterRefused` if the cluster's differ.
        A lone server owns the database, so its keys become the recorded ones."""
        ids = {k: v for k, v in local_key_ids(self._settings).items() if v is not None}
        before = await cluster_repo.record_keys(self._engine, ids, now_ms(),
                                                replace=not self.clustered)
        names = _differing(dict(ids), before) if self.clustered else []
        if names:
            raise ClusterRefused(_keys_message(names, self._settings))
        changed = _differing(dict(ids), before)
        if changed:
            log.warning("the keys in %s differ from the ones last recorded on this "
                        "database (%s): messages tagged before cannot be verified",
                        self._settings.data_dir, ", ".join(changed))

    def start(self) -> None:
        self._task = asyncio.create_task(self._heartbeat_loop(), name="covey-cluster-lease")

    async def _beat(self) -> None:
        now = now_ms()
        await cluster_repo.upsert_node(self._engine, cluster_repo.NodeRow(
            self.node_id, self.clustered, self._listen, now), self._started_ms)
        since = now - int(self._settings.cluster_heartbeat_s * 3000)
        self.peers = [r.node_id for r in await cluster_repo.live_nodes(self._engine, since)
                      if r.node_id != self.node_id]
        if self.on_peers is not None:
            self.on_peers(len(self.peers))

    async def _heartbeat_loop(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self._settings.cluster_heartbeat_s)
            try:
                # The database went away and took the locks with it: take them again.
                alive = await self._lock.alive()
                if not alive and self.leader:
                    self.leader = False
                    if self.on_leader is not None:
                        self.on_leader(False)
                if not alive and not await self._lock.acquire(shared=self.clustered):
                    log.error("another process took this database while it was "
                              "unreachable: %s", await _lock_problem(
                                  self._engine, self._settings, shared=self.clustered,
                                  got=False, node_id=self.node_id))
                await self._beat()
                await self._lead()
                beats += 1
                if beats % 1000 == 1:
                    day_ago = now_ms() - 24 * 3600 * 1000
                    await cluster_repo.forget_nodes_before(self._engine, day_ago)
                    await cluster_repo.forget_full_buckets(self._engine, day_ago)
            except Exception as exc:
                log.warning("cluster lease not renewed: %s", type(exc).__name__)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await cluster_repo.remove_node(self._engine, self.node_id)
        await self._lock.release()
