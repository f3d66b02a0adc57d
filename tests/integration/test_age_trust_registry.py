"""The trust registry a real `covey server` (SQLite and PostgreSQL) accepts: only signed by
the pinned operator key, only from a file or HTTPS, never replaced by an unsigned or badly
signed file, and failing closed (bands read as unverified, a WARNING and `/healthz` say
why) when the registry or an issuer's revocation status list is too old."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from covey.age.signed import OperatorKey
from covey.client import ClientError
from tests.integration._age import OPERATOR, server_env, wait_for, write_registry
from tests.integration._safety import BandIssuer, People

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

# Long enough for a registration with a proof on a loaded machine, short enough to wait for.
MAX_AGE_S = 8


@pytest.fixture(scope="module")
def band_issuer(tmp_path_factory: pytest.TempPathFactory) -> BandIssuer:
    return BandIssuer(tmp_path_factory.mktemp("trust-registry-issuer"))


@pytest.fixture
async def people(covey_server: Any, band_issuer: BandIssuer, tmp_path: Path) -> Any:
    group = People(covey_server, band_issuer, tmp_path)
    try:
        yield group
    finally:
        await group.close()


def _trust(server: Any, registry: Path, **settings: Any) -> None:
    server.restart(env=server_env(registry, **settings))


async def _health(server: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    health: dict[str, Any] = response.json()["trust_registry"]
    return health


async def _band(client: Any) -> str:
    return str((await client.whoami()).age.band)


async def test_a_stale_registry_fails_closed_until_the_operator_signs_again(
        covey_server: Any, band_issuer: BandIssuer, people: People, tmp_path: Path) -> None:
    registry = tmp_path / "registry.json"
    write_registry(registry, [])
    _trust(covey_server, registry, trust_registry_max_age_s=MAX_AGE_S)
    wallet = band_issuer.wallet(30)
    write_registry(registry, [band_issuer.issuer.publish(refresh=True)])  # signed now
    await asyncio.sleep(0.6)  # the server looks at the file at most twice a second
    amy = await people._register("amy", wallet)
    assert await _band(amy) == "16+"
    assert (await _health(covey_server))["state"] == "current"

    async def stale() -> bool:
        return (await _health(covey_server))["state"] == "stale"

    await wait_for(stale, 2 * MAX_AGE_S)
    assert await _band(amy) == "unverified"  # the band is kept, but nobody vouches for it
    health = await _health(covey_server)
    assert "the registry was signed" in health["problems"][0]
    assert "is stale, failing closed" in covey_server.log()
    with pytest.raises(ClientError) as refused:
        await amy.prove_age()
    assert refused.value.code == "age_verification_unavailable"

    write_registry(registry, [band_issuer.issuer.publish(refresh=True)])

    async def adult_again() -> bool:
        return await _band(amy) == "16+"

    await wait_for(adult_again, 10)


async def test_an_issuer_whose_status_list_is_old_vouches_for_nobody(
        covey_server: Any, band_issuer: BandIssuer, people: People, tmp_path: Path) -> None:
    registry = tmp_path / "registry.json"
    write_registry(registry, [])
    _trust(covey_server, registry, revocation_status_max_age_s=MAX_AGE_S)
    wallet = band_issuer.wallet(30)
    write_registry(registry, [band_issuer.issuer.publish(refresh=True)])  # dated now
    await asyncio.sleep(0.6)
    ben = await people._register("ben", wallet)
    assert await _band(ben) == "16+"

    async def unverified() -> bool:
        return await _band(ben) == "unverified"

    await wait_for(unverified, 2 * MAX_AGE_S)
    health = await _health(covey_server)
    assert health["state"] == "stale"
    assert any("revocation status list" in p and "did:web:registry.example" in p
               for p in health["problems"])
    # What `covey issuer publish` does: the issuer re-dates its status lists, the operator
    # signs the registry again; the band counts again.
    await asyncio.sleep(1.1)  # status list timestamps are in whole seconds
    write_registry(registry, [band_issuer.issuer.publish(refresh=True)])

    async def adult_again() -> bool:
        return await _band(ben) == "16+"

    await wait_for(adult_again, 10)


async def test_unsigned_or_badly_signed_files_never_replace_the_registry(
        covey_server: Any, band_issuer: BandIssuer, people: People, tmp_path: Path) -> None:
    registry = tmp_path / "registry.json"
    write_registry(registry, [band_issuer.issuer.publish()])
    _trust(covey_server, registry)
    cleo = await people.adult("cleo")
    assert await _band(cleo) == "16+"

    forgeries = [
        json.dumps({"issuers": []}).encode(),  # the old unsigned format
        OperatorKey.generate().sign([], 2**52),  # signed by someone else, far in the future
    ]
    for forged in forgeries:
        registry.write_bytes(forged)
        await asyncio.sleep(1.1)  # the server looks at the file at most twice a second
        assert await _band(cleo) == "16+"
        health = await _health(covey_server)
        assert health["state"] == "reload_failing", health
    assert "not reloaded" in covey_server.log()

    write_registry(registry, [])  # the operator's own, validly signed: it counts

    async def unverified() -> bool:
        return await _band(cleo) == "unverified"

    await wait_for(unverified, 10)
    assert (await _health(covey_server))["state"] == "current"


@pytest.mark.parametrize(("registry", "expected"), [
    ("http://registry.example/registry.json", "local file or an https:// URL"),
    ("/srv/covey/registry.json", "trust_registry_key is not"),
])
def test_the_server_refuses_to_start_with_an_unsafe_registry_setting(
        registry: str, expected: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    env["COVEY_TRUST_REGISTRY"] = registry
    if registry.startswith("http://"):
        env["COVEY_TRUST_REGISTRY_KEY"] = OPERATOR.public_key
    result = subprocess.run(
        [sys.executable, "-m", "covey", "server", "--port", "1",
         "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'covey.db'}",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr

