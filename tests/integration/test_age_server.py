"""Age assurance end to end: a real `covey issuer` process, a real `covey server` (SQLite and
PostgreSQL) and real clients. Bands, expiry and re-proof, turning 16, every bad input
(band unchanged), untrusted issuers, revocation, what the server stores, interop."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from covey.age import AgeBand, AgeChallenge, Wallet, band_predicate, years_before
from covey.client import Client, ClientError
from tests.integration._age import (
    FAST_SCRYPT,
    PASSPHRASE,
    IssuerService,
    ShiftedClock,
    covey,
    get_credential,
    server_env,
    today,
    wait_for,
    write_registry,
)
from tests.unit._age_fixtures import raw_issuer

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

CHALLENGE_TTL_S = 3


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerService]:
    service = IssuerService(tmp_path_factory.mktemp("age-issuer")).start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(autouse=True)
def _trust_env(issuer: IssuerService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before `covey_server` starts: trust the shared issuer, short challenge TTL."""
    for key, value in server_env(issuer.registry,
                                 age_challenge_ttl_s=CHALLENGE_TTL_S).items():
        monkeypatch.setenv(key, value)


class People:
    def __init__(self, server: Any, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.clients: list[Client] = []

    async def register(self, handle: str, **kw: Any) -> Client:
        client = await Client.register(self.server.url, handle, self.tmp / f"{handle}.db",
                                       PASSPHRASE, scrypt_n=FAST_SCRYPT, **kw)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


@pytest.fixture
async def people(covey_server: Any, tmp_path: Path) -> Any:
    group = People(covey_server, tmp_path)
    try:
        yield group
    finally:
        await group.close()


def http_for(server: Any, client: Client) -> httpx.AsyncClient:
    token = client._api.token  # the device's own bearer token
    return httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30,
                             headers={"Authorization": f"Bearer {token}"})


def age_rows(server: Any) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from covey.server.storage.engine import create_engine
    from covey.server.storage.schema_age import age_bands

    async def read() -> list[dict[str, Any]]:
        engine = create_engine(server.database_url)
        try:
            async with engine.connect() as conn:
                return [dict(r._mapping) for r in await conn.execute(select(age_bands))]
        finally:
            await engine.dispose()

    return asyncio.run(read())  # called through asyncio.to_thread: no loop in this thread


def server_bytes(server: Any) -> bytes:
    """Every byte the server keeps on disk (SQLite file and WAL, data dir, its log)."""
    files = [p for p in server.data_dir.rglob("*") if p.is_file()] + [server.log_path]
    if server.database_url.startswith("sqlite"):
        database = Path(server.database_url.split("///", 1)[1])
        files += [database, Path(f"{database}-wal")]
    return b"".join(p.read_bytes() for p in files if p.exists())


# --- bands -----------------------------------------------------------------------------


async def test_16_plus_and_under_16_from_a_real_issuer(issuer: IssuerService, people: People,
                                                      covey_server: Any) -> None:
    adult = await people.register("adult")
    child = await people.register("child")
    assert (await adult.whoami()).age.band == "unverified"

    await get_credential(adult, issuer, years_before(today(), 30), use_cli=True)
    await get_credential(child, issuer, years_before(today(), 12))
    adult_status = await adult.prove_age()
    child_status = await child.prove_age()
    assert adult_status.band == "16+" and child_status.band == "under-16"

    now_ms = datetime.now(UTC).timestamp() * 1000
    me = await child.whoami()
    assert me.age.band == "under-16" and me.user_id == "child"
    assert me.devices == [child.device_id]
    assert me.age.issuer_id == issuer.issuer_id
    assert me.age.expires_at_ms is not None
    assert now_ms + 80 * 86400_000 < me.age.expires_at_ms <= now_ms + 90 * 86400_000 + 60_000
    assert (await adult.whoami()).age.band == "16+"

    # The server keeps band, expiry, issuer and time: no other column, nothing else.
    rows = await asyncio.to_thread(age_rows, covey_server)
    assert {tuple(sorted(r)) for r in rows} == {
        ("band", "expires_ms", "issuer_id", "user_id", "verified_ms")}
    assert sorted((r["user_id"], r["band"]) for r in rows) == [("adult", "16+"),
                                                              ("child", "under-16")]


async def test_registration_with_a_filled_wallet_proves_at_once(
        issuer: IssuerService, people: People, tmp_path: Path) -> None:
    helper = await people.register("helper")
    await get_credential(helper, issuer, years_before(today(), 40))
    wallet = helper._age.wallet
    shutil.copytree(tmp_path / "helper.db.tails", tmp_path / "newcomer.db.tails")
    loop = asyncio.get_running_loop()
    started = loop.time()
    newcomer = await people.register("newcomer", wallet=wallet.to_bytes())
    elapsed = loop.time() - started
    me = await newcomer.whoami()
    assert me.age.band == "16+", me
    assert elapsed < 5


async def test_the_server_asks_connected_devices_and_the_client_answers(
        issuer: IssuerService, people: People, covey_server: Any) -> None:
    dana = await people.register("dana")
    await dana.wait_connected()
    await get_credential(dana, issuer, years_before(today(), 20))
    assert (await dana.whoami()).age.band == "unverified"

    async def proven() -> bool:
        return (await dana.whoami()).age.band == "16+"

    # No prove_age() call: when the device reconnects, the server sees an unverified
    # account and sends age_proof_needed; the client answers it by itself.
    covey_server.restart()
    await wait_for(proven, 30)


async def test_expiry_and_reproof_without_waiting(issuer: IssuerService, people: People,
                                                 covey_server: Any) -> None:
    clock = ShiftedClock()
    erin = await people.register("erin", age_clock=clock)
    await get_credential(erin, issuer, years_before(today(), 25))
    first = await erin.prove_age()
    assert first.band == "16+"

    # 91 days later (server and wallet clocks shifted): the band has expired...
    clock.offset = timedelta(days=91)
    covey_server.restart(env={"COVEY_AGE_CLOCK_OFFSET_S": str(91 * 86400)})

    async def reproven() -> bool:
        me = await erin.whoami()
        return me.age.band == "16+" and (me.age.verified_at_ms or 0) > (
            first.verified_at_ms or 0)

    # ...the server tells the reconnecting device, and it proves again by itself.
    await wait_for(reproven, 30)


async def test_a_connected_device_is_asked_before_its_band_expires_and_proves_again(
        issuer: IssuerService, people: People, covey_server: Any) -> None:
    """The background task, not a reconnect: the device stays connected throughout."""
    # Bands last a day here, and the server wants a fresh proof once less than a day minus
    # 3 s is left: a band proven now enters that window 3 s later. It looks every 0.2 s.
    covey_server.restart(env={"COVEY_AGE_BAND_VALIDITY_DAYS": "1",
                              "COVEY_AGE_REPROOF_BEFORE_S": str(86400 - 3),
                              "COVEY_AGE_NOTIFY_INTERVAL_S": "0.2"})
    clock = ShiftedClock()
    pia = await people.register("pia", age_clock=clock)
    await pia.wait_connected()
    await get_credential(pia, issuer, years_before(today(), 33))
    first = await pia.prove_age()
    assert first.band == "16+" and first.expires_at_ms is not None
    # A device does not prove again what it proved less than a minute ago (the server may
    # ask while a registration's proof is landing); on this device, two minutes pass.
    clock.offset = timedelta(minutes=2)
    answers = 0
    answer_server = pia._age.answer_server

    async def counted() -> None:
        nonlocal answers
        answers += 1
        await answer_server()

    pia._age.answer_server = counted  # type: ignore[method-assign]

    async def proven_again() -> bool:
        me = (await pia.whoami()).age
        return (me.band == "16+" and (me.verified_at_ms or 0) > (first.verified_at_ms or 0)
                and (me.expires_at_ms or 0) > (first.expires_at_ms or 0))

    # No prove_age() call and no reconnect: the server's frame, the client's own answer.
    await wait_for(proven_again, 30)
    assert answers >= 1 and pia.connected


async def test_under_16_who_turns_16_proves_16_plus(issuer: IssuerService, people: People,
                                                   covey_server: Any) -> None:
    clock = ShiftedClock()
    fern = await people.register("fern", age_clock=clock)
    # 16 in ten days: the 90- and 30-day horizons cannot be proven; 7 days can.
    birth = years_before(today(), 16) + timedelta(days=10)
    await get_credential(fern, issuer, birth)
    status = await fern.prove_age()
    assert status.band == "under-16"
    assert status.expires_at_ms is not None
    assert status.expires_at_ms <= (datetime.now(UTC) + timedelta(days=7)).timestamp() * 1000

    clock.offset = timedelta(days=12)
    covey_server.restart(env={"COVEY_AGE_CLOCK_OFFSET_S": str(12 * 86400)})

    async def adult() -> bool:
        return (await fern.whoami()).age.band == "16+"

    await wait_for(adult, 30)


# --- bad input ---------------------------------------------------------------------------


async def _challenge(http: httpx.AsyncClient, band: str = "16+", **kw: Any) -> dict[str, Any]:
    response = await http.post("/v1/age/challenge", json={"band": band, **kw})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _present(client: Client, challenge: dict[str, Any]) -> dict[str, Any]:
    return client._age.wallet.present(challenge, status_lists=challenge["status_lists"],
                                      tails_dir=client._age._tails_dir)


async def test_every_bad_input_is_a_4xx_naming_it_and_leaves_the_band(
        issuer: IssuerService, people: People, covey_server: Any) -> None:
    gail = await people.register("gail")
    kid = await people.register("kid")
    await get_credential(gail, issuer, years_before(today(), 35))
    await get_credential(kid, issuer, years_before(today(), 11))
    baseline = await gail.prove_age()
    kid_baseline = await kid.prove_age()
    http = http_for(covey_server, gail)
    kid_http = http_for(covey_server, kid)

    async def post(body: bytes | dict[str, Any], via: httpx.AsyncClient = http,
                   ) -> tuple[int, str]:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await via.post("/v1/age/presentation", content=content,
                                  headers={"Content-Type": "application/json"})
        assert response.status_code < 500, response.text
        return response.status_code, response.json()["error"]["code"]

    # a valid presentation, then the same bytes again (replay)
    challenge = await _challenge(http)
    good = _present(gail, challenge)
    assert (await http.post("/v1/age/presentation", json=good)).status_code == 200
    baseline = (await gail.whoami()).age
    # Nothing of the presentation is kept: not its nonce, not any of its proof values.
    stored = await asyncio.to_thread(server_bytes, covey_server)
    proof_value = str(good["presentation"]["proof"]["aggregated_proof"]["c_hash"])
    assert good["nonce"].encode() not in stored and proof_value.encode() not in stored
    assert await post(good) == (409, "nonce_used")
    # a fresh proof for an already used nonce
    assert await post(_present(gail, challenge)) == (409, "nonce_used")
    # a proof made for another challenge, submitted under this one's nonce
    first, second = await _challenge(http), await _challenge(http)
    other = _present(gail, first)
    assert await post({"nonce": second["nonce"], "presentation": other["presentation"]}) == (
        400, "proof_invalid")
    # a nonce never issued, and one issued to another account
    assert await post({**_present(gail, await _challenge(http)), "nonce": "12345"}) == (
        400, "nonce_unknown")
    kid_challenge = await _challenge(kid_http, "under-16")
    assert await post(_present(kid, kid_challenge)) == (400, "nonce_unknown")
    # the wrong predicate: a 30-day under-16 proof for a 90-day challenge
    kid_challenge = await _challenge(kid_http, "under-16")
    shorter = dict(kid_challenge)
    shorter["predicate"] = {"attribute": "birthdate_dateint", "p_type": ">", "p_value":
                            band_predicate(AgeBand.UNDER_16, datetime.now(UTC),
                                           horizon_days=30).p_value}
    shorter["horizon_days"] = 30
    wrong = _present(kid, shorter)
    assert await post(wrong, kid_http) == (400, "predicate_mismatch")
    # malformed JSON, and JSON that is not a presentation
    assert await post(b'{"nonce": "1", "presentation": ') == (400, "malformed_presentation")
    assert await post(b"[]") == (400, "malformed_presentation")
    live = (await _challenge(http))["nonce"]
    assert await post({"nonce": live, "presentation": {"proof": 1}}) == (
        400, "malformed_presentation")
    # an expired challenge
    stale = await _challenge(http)
    await asyncio.sleep(CHALLENGE_TTL_S + 0.5)
    assert await post(_present(gail, stale)) == (410, "nonce_expired")
    # an untrusted issuer: a credential from an issuer not in the registry
    raw = raw_issuer()
    outsider = Wallet.create()
    offer = raw.offer()
    request = outsider.request_credential(offer)
    outsider.store_credential(raw.issue(offer["offer"], request["request"], 19800101))
    challenge = await _challenge(http)
    forged = dict(challenge)
    forged["cred_def_ids"] = [raw.cred_def_id]
    submission = outsider.present(AgeChallenge.from_json(forged),
                                  status_lists={raw.rev_reg_def_id: raw.status_list.to_dict()},
                                  tails_dir=raw.tails_dir)
    assert await post(submission) == (403, "issuer_untrusted")
    # a wrong band request is refused before anything is issued
    response = await http.post("/v1/age/challenge", json={"band": "unverified"})
    assert response.status_code == 422

    me = (await gail.whoami()).age
    assert me == baseline
    assert (await kid.whoami()).age == kid_baseline
    await http.aclose()
    await kid_http.aclose()


async def test_revoked_credential_fails(issuer: IssuerService, people: People,
                                        covey_server: Any) -> None:
    hal = await people.register("hal")
    credential_id = await get_credential(hal, issuer, years_before(today(), 45))
    assert (await hal.prove_age()).band == "16+"
    http = http_for(covey_server, hal)
    old_challenge = await _challenge(http)
    before = (await hal.whoami()).age

    await asyncio.to_thread(covey, "issuer", "revoke", credential_id, "--dir", str(issuer.dir))
    await asyncio.to_thread(issuer.publish)
    await asyncio.sleep(1.1)  # the server looks at the registry file at most twice a second

    # The honest wallet sees its bit in the server's status list and sends nothing.
    with pytest.raises(ClientError) as refused:
        await hal.prove_age()
    assert refused.value.code == "credential_revoked"
    # A wallet proving against the old status list is refused by the server.
    stale = _present(hal, old_challenge | {"nonce": (await _challenge(http))["nonce"]})
    response = await http.post("/v1/age/presentation", json=stale)
    assert response.status_code in (400, 409), response.text
    assert response.json()["error"]["code"] in ("revocation_stale", "proof_invalid")
    assert (await hal.whoami()).age == before
    await http.aclose()


async def test_untrusted_issuer_and_registry_reload(issuer: IssuerService, people: People,
                                                    covey_server: Any, tmp_path: Path) -> None:
    """A server trusting nobody refuses challenges; trusting the issuer later (file reload)
    works, and a band from an issuer dropped from the registry reads as unverified."""
    registry = tmp_path / "registry.json"
    write_registry(registry, [])
    covey_server.restart(env={"COVEY_TRUST_REGISTRY": str(registry)})
    ivy = await people.register("ivy")
    await get_credential(ivy, issuer, years_before(today(), 22))
    with pytest.raises(ClientError) as unavailable:
        await ivy.prove_age()
    assert unavailable.value.code == "age_verification_unavailable"

    await asyncio.to_thread(issuer.publish, registry)
    await asyncio.sleep(0.6)
    assert (await ivy.prove_age()).band == "16+"

    write_registry(registry, [])
    await asyncio.sleep(0.6)
    assert (await ivy.whoami()).age.band == "unverified"


async def test_interop_with_an_issuer_built_on_anoncreds_alone(
        issuer: IssuerService, people: People, covey_server: Any, tmp_path: Path) -> None:
    raw = raw_issuer()
    registry = tmp_path / "registry.json"
    write_registry(registry, [issuer.entry(), raw.entry()])
    covey_server.restart(env={"COVEY_TRUST_REGISTRY": str(registry)})
    wallet = Wallet.create()
    offer = raw.offer()
    request = wallet.request_credential(offer)
    wallet.store_credential(raw.issue(offer["offer"], request["request"],
                                      int(years_before(today(), 10).strftime("%Y%m%d"))))
    tails = tmp_path / "joan.db.tails"
    tails.mkdir()
    for file in raw.tails_dir.iterdir():
        shutil.copy(file, tails / file.name)
    jo = await people.register("joan", wallet=wallet)
    me = await jo.whoami()
    assert me.age.band == "under-16"
    assert me.age.issuer_id == raw.issuer_id


async def test_covey_whoami_shows_user_devices_band_and_expiry(
        issuer: IssuerService, people: People, tmp_path: Path) -> None:
    kim = await people.register("kim")
    await get_credential(kim, issuer, years_before(today(), 14))
    people.clients.remove(kim)
    await kim.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    env.update(COVEY_PASSPHRASE=PASSPHRASE, COLUMNS="200")
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "covey", "whoami", "--store",
                         str(tmp_path / "kim.db"), "--prove"],
        capture_output=True, text=True, timeout=60, env=env)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "kim" in out and "under-16" in out and issuer.issuer_id in out
    assert "credentials in wallet" in out
