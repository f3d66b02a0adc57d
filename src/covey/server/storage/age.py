"""SQL for age assurance: one account's band (read, replace, list those expiring soon),
and the single-use challenges every relay process shares.

Writes go through the repository's single writer like every other write."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from covey.server.storage.repository import Repository
from covey.server.storage.schema_age import age_bands, age_challenges


@dataclass(frozen=True, slots=True)
class AgeBandRow:
    user_id: str
    band: str
    expires_ms: int
    issuer_id: str
    verified_ms: int


@dataclass(frozen=True, slots=True)
class ClaimedChallenge:
    """A stored challenge (its JSON) and whether this claim was the first."""

    challenge: str
    first: bool


_COLUMNS = (age_bands.c.user_id, age_bands.c.band, age_bands.c.expires_ms,
            age_bands.c.issuer_id, age_bands.c.verified_ms)


class AgeStorage:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    # --- bands ---------------------------------------------------------------------------

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

    # --- challenges ----------------------------------------------------------------------

    async def add_challenge(self, nonce_hash: bytes, subject: str, challenge: str,
                            expires_ms: int, *, purge_before_ms: int) -> None:
        """Keep a new challenge; drop those that expired before `purge_before_ms`."""

        async def job(conn: AsyncConnection) -> None:
            await conn.execute(delete(age_challenges).where(
                age_challenges.c.expires_ms < purge_before_ms))
            await conn.execute(insert(age_challenges).values(
                nonce_hash=nonce_hash, subject=subject, challenge=challenge,
                expires_ms=expires_ms, used=0))

        await self._repo.writer.run_job(job)

    async def claim_challenge(self, nonce_hash: bytes, subject: str,
                              ) -> ClaimedChallenge | None:
        """Mark the challenge used; None if there is none for this subject.

        The conditional UPDATE is the whole claim: of any number of concurrent claims,
        in this process or another, on SQLite (one writer at a time) or PostgreSQL (the
        row lock, then `used = 0` re-checked), exactly one changes the row."""

        async def job(conn: AsyncConnection) -> ClaimedChallenge | None:
            won = (await conn.execute(
                update(age_challenges)
                .where(age_challenges.c.nonce_hash == nonce_hash,
                       age_challenges.c.subject == subject, age_challenges.c.used == 0)
                .values(used=1).returning(age_challenges.c.challenge))).first()
            if won is not None:
                return ClaimedChallenge(won[0], first=True)
            seen = (await conn.execute(select(age_challenges.c.challenge).where(
                age_challenges.c.nonce_hash == nonce_hash,
                age_challenges.c.subject == subject))).first()
            return None if seen is None else ClaimedChallenge(seen[0], first=False)

        return await self._repo.writer.run_job(job)
