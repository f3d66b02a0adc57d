"""SQL of per-conversation detector state (`detector_states`): read a conversation's
states, write them after a scan (one upsert each), purge those not touched within the
safety copies' retention."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import and_, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from covey.server.storage.repository import Repository
from covey.server.storage.schema_detectors import detector_states


class DetectorStateStore:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    async def states(self, conversation_id: str,
                     detectors: Sequence[str]) -> dict[str, str]:
        """`{detector: state}` for the detectors that have one in this conversation."""
        if not detectors:
            return {}
        c = detector_states.c
        async with self._repo.engine.connect() as conn:
            rows = await conn.execute(select(c.detector, c.state).where(and_(
                c.conversation_id == conversation_id, c.detector.in_(list(detectors)))))
            return {str(r[0]): str(r[1]) for r in rows}

    async def save(self, conversation_id: str, states: Mapping[str, str],
                   now_ms: int) -> None:
        if not states:
            return

        async def job(conn: AsyncConnection) -> None:
            dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            for detector, state in states.items():
                stmt = dialect_insert(detector_states).values(
                    conversation_id=conversation_id, detector=detector, state=state,
                    updated_ms=now_ms)
                await conn.execute(stmt.on_conflict_do_update(
                    index_elements=["conversation_id", "detector"],
                    set_={"state": state, "updated_ms": now_ms}))

        await self._repo.writer.run_job(job)

    async def purge(self, before_ms: int) -> int:
        async def job(conn: AsyncConnection) -> int:
            result = await conn.execute(delete(detector_states).where(
                detector_states.c.updated_ms < before_ms))
            return int(result.rowcount or 0)

        removed: int = await self._repo.writer.run_job(job)
        return removed
