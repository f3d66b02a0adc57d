"""SQL for age bands: read one account's row, replace it, list rows expiring soon.

Writes go through the repository's single writer like every other write."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from covey.server.storage.repository import Repository
from covey.server.storage.schema_age import age_bands


@dataclass(frozen=True, slots=True)
class AgeBandRow:
    user_id: str
    band: str
    expires_ms: int
    issuer_id: str
    verified_ms: int


_COLUMNS = (age_bands.c.user_id, age_bands.c.band, age_bands.c.expires_ms,
            age_bands.c.issuer_id, age_bands.c.verified_ms)


class AgeStorage:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    async def get(self, user_id: str) -> AgeBandRow | None:
        async with self._repo.engine.connect() as conn:
            row = (await conn.execute(select(*_COLUMNS).where(
                age_bands.c.user_id == user_id))).first()
        return None if row is None else AgeBandRow(*row)

    async def put(self, row: AgeBandRow) -> None:
        async def job(conn: AsyncConnection) -> None:
            await conn.execute(delete(age_bands).where(age_bands.c.user_id == row.user_id))
            await conn.execute(insert(age_bands).values(
                user_id=row.user_id, band=row.band, expires_ms=row.expires_ms,
                issuer_id=row.issuer_id, verified_ms=row.verified_ms))

        await self._repo.writer.run_job(job)

    async def expiring(self, after_ms: int, until_ms: int) -> list[str]:
        """Accounts whose band expires in (after_ms, until_ms]."""
        async with self._repo.engine.connect() as conn:
            rows = await conn.execute(select(age_bands.c.user_id).where(
                age_bands.c.expires_ms > after_ms, age_bands.c.expires_ms <= until_ms))
            return [r[0] for r in rows]
