"""Age challenges live in the database: two real `covey server` processes on one database
(SQLite and PostgreSQL). A challenge from one is answered at the other, once; a replay
to either is refused, concurrent answers have exactly one winner, and expired challenges
are purged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from covey.age import years_before
from covey.client import Client
from covey.server.storage.engine import create_engine
from covey.server.storage.schema_age import age_challenges
from tests.integration.conftest import BACKENDS, CoveyServer
from tests.support.age import (
    FAST_SCRYPT,
    PASSPHRASE,
    IssuerService,
    get_credential,
    server_env,
    today,
)
from tests.support.cluster import NATS_URL

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerService]:
    service = IssuerService(tmp_path_factory.mktemp("age-issuer-shared")).start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(params=BACKENDS)
def pair(request: pytest.FixtureRequest, tmp_path: Path, issuer: IssuerService,
         ) -> Iterator[tuple[CoveyServer, CoveyServer]]:
    """Two relay processes on one database and one data dir (as behind a load balancer);
    on PostgreSQL they are nodes of a cluster (NATS), as two processes there must be."""
    database_url = request.getfixturevalue("_database_" + request.param)
    env = server_env(issuer.registry)
    if request.param == "postgres":
        env["COVEY_NATS_URL"] = NATS_URL
    first = CoveyServer(database_url, tmp_path / "data", env=env,
                        log_path=tmp_path / "server-a.log")
    second = CoveyServer(database_url, tmp_path / "data", env=env,
                         log_path=tmp_path / "server-b.log")
    first.start()
    try:
        second.start()  # after the first one migrated the database and made the key files
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def _http(server: CoveyServer, client: Client) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=60,
                             headers={"Authorization": f"Bearer {client._api.token}"})


async def _challenge(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.post("/v1/age/challenge", json={"band": "16+"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _prove(client: Client, challenge: dict[str, Any]) -> dict[str, Any]:
    return client._age.wallet.present(challenge, status_lists=challenge["status_lists"],
                                      tails_dir=client._age._tails_dir)


async def _post(http: httpx.AsyncClient, submission: dict[str, Any]) -> tuple[int, str]:
    response = await http.post("/v1/age/presentation", json=submission)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        return 200, str(response.json()["band"])
    return response.status_code, str(response.json()["error"]["code"])


def _challenge_rows(database_url: str) -> int:
    async def count() -> int:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                return int(await conn.scalar(
                    select(func.count()).select_from(age_challenges)) or 0)
        finally:
            await engine.dispose()

    return asyncio.run(count())  # called through asyncio.to_thread


async def test_a_challenge_from_one_process_is_answered_at_the_other_once(
        issuer: IssuerService, pair: tuple[CoveyServer, CoveyServer], tmp_path: Path) -> None:
    one, other = pair
    mira = await Client.register(one.url, "mira", tmp_path / "mira.db", PASSPHRASE,
                                 scrypt_n=FAST_SCRYPT, connect=False)
    nils = await Client.register(other.url, "nils", tmp_path / "nils.db", PASSPHRASE,
                                 scrypt_n=FAST_SCRYPT, connect=False)
    at_one, at_other = _http(one, mira), _http(other, mira)
    nils_at_other = _http(other, nils)
    try:
        await get_credential(mira, issuer, years_before(today(), 30))
        await get_credential(nils, issuer, years_before(today(), 40))

        # Challenge from one process, presentation to the other: verified.
        submission = _prove(mira, await _challenge(at_one))
        assert await _post(at_other, submission) == (200, "16+")
        assert (await mira.whoami()).age.band == "16+"  # read back through the first
        # The same presentation again, to either process: refused.
        assert await _post(at_one, submission) == (409, "nonce_used")
        assert await _post(at_other, submission) == (409, "nonce_used")
        # Bound to the account it was issued to, wherever it is answered.
        stolen = _prove(mira, await _challenge(at_one))
        assert await _post(nils_at_other, stolen) == (400, "nonce_unknown")
        assert await _post(at_other, stolen) == (200, "16+")  # not burnt by the thief

        # Six copies of one answer posted at once, three to each process: one winner.
        racing = _prove(mira, await _challenge(at_other))
        outcomes = await asyncio.gather(*(
            _post(at_one if i % 2 else at_other, racing) for i in range(6)))
        assert sorted(outcomes) == [(200, "16+")] + [(409, "nonce_used")] * 5, outcomes
    finally:
        for http in (at_one, at_other, nils_at_other):
            await http.aclose()
        await mira.close()
        await nils.close()


async def test_expired_challenges_are_purged(
        issuer: IssuerService, pair: tuple[CoveyServer, CoveyServer], tmp_path: Path) -> None:
    one, other = pair
    olga = await Client.register(one.url, "olga", tmp_path / "olga.db", PASSPHRASE,
                                 scrypt_n=FAST_SCRYPT, connect=False)
    try:
        async with _http(one, olga) as http:
            for _ in range(3):
                await _challenge(http)
        assert await asyncio.to_thread(_challenge_rows, one.database_url) == 3

        # Two hours later (the second process's clock moved on): issuing a challenge
        # drops those that expired more than the retention (an hour) ago.
        other.restart(env={"COVEY_AGE_CLOCK_OFFSET_S": str(2 * 3600)})
        async with _http(other, olga) as http:
            fresh = await _challenge(http)
        assert await asyncio.to_thread(_challenge_rows, one.database_url) == 1
        assert fresh["nonce"]
    finally:
        await olga.close()
