"""Revocation registry rotation end to end: a real `covey issuer` whose registry holds two
credentials, a real `covey server` (SQLite and PostgreSQL), real clients. The third
credential lands in a new registry; holders of both prove; revoking in the old registry
still stops its holder."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from covey.age import years_before
from covey.client import Client, ClientError
from tests.support.age import (
    FAST_SCRYPT,
    PASSPHRASE,
    IssuerService,
    covey,
    get_credential,
    server_env,
    today,
    wait_for,
)

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


@pytest.fixture
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerService]:
    """A fresh issuer per test: its registries fill up."""
    service = IssuerService(tmp_path_factory.mktemp("age-issuer-small"), capacity=2).start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(autouse=True)
def _trust_env(issuer: IssuerService, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in server_env(issuer.registry).items():
        monkeypatch.setenv(key, value)


async def test_a_full_registry_rotates_and_holders_of_both_prove(
        issuer: IssuerService, covey_server: Any, tmp_path: Path) -> None:
    clients: list[Client] = []
    try:
        for handle in ("quinn", "rosa", "sami"):
            clients.append(await Client.register(
                covey_server.url, handle, tmp_path / f"{handle}.db", PASSPHRASE,
                scrypt_n=FAST_SCRYPT, connect=False))
        quinn, rosa, sami = clients
        quinn_id = await get_credential(quinn, issuer, years_before(today(), 30))
        await get_credential(rosa, issuer, years_before(today(), 31))
        # The registry is full: the operator's approval opens the next one, and says so.
        await get_credential(sami, issuer, years_before(today(), 32), use_cli=True)
        registries = [c.age_credentials()[0].rev_reg_id for c in clients]
        assert registries[0] == registries[1] != registries[2]
        assert str(registries[0]).endswith("/revocation/1")
        assert str(registries[2]).endswith("/revocation/2")
        entry = issuer.entry()
        assert [r["rev_reg_def_id"] for r in entry["revocation_registries"]] == [
            registries[0], registries[2]]

        # Until the issuer is published again the server does not know registry 2...
        with pytest.raises(ClientError) as unknown:
            await sami.prove_age()
        assert unknown.value.code == "no_matching_credential"
        # ...then holders of both registries prove and the server verifies them.
        await asyncio.to_thread(issuer.publish)

        async def sami_proves() -> bool:
            try:
                return (await sami.prove_age()).band == "16+"
            except ClientError:
                return False

        await wait_for(sami_proves, 10)
        assert (await quinn.prove_age()).band == "16+"
        assert (await rosa.prove_age()).band == "16+"
        old_challenge = await _challenge(covey_server, quinn)

        # Revoking a credential in the old registry: its holder's proofs fail...
        await asyncio.to_thread(covey, "issuer", "revoke", quinn_id, "--dir", str(issuer.dir))
        await asyncio.to_thread(issuer.publish)

        async def quinn_refused() -> bool:
            try:
                await quinn.prove_age()
            except ClientError as exc:
                return exc.code == "credential_revoked"
            return False

        await wait_for(quinn_refused, 10)
        stale = quinn._age.wallet.present(
            old_challenge | {"nonce": (await _challenge(covey_server, quinn))["nonce"]},
            status_lists=old_challenge["status_lists"], tails_dir=quinn._age._tails_dir)
        async with _http(covey_server, quinn) as http:
            response = await http.post("/v1/age/presentation", json=stale)
        assert response.status_code in (400, 409), response.text
        assert response.json()["error"]["code"] in ("revocation_stale", "proof_invalid")
        # ...and nobody else's, in either registry.
        assert (await rosa.prove_age()).band == "16+"
        assert (await sami.prove_age()).band == "16+"
    finally:
        for client in clients:
            await client.close()


def _http(server: Any, client: Client) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30,
                             headers={"Authorization": f"Bearer {client._api.token}"})


async def _challenge(server: Any, client: Client) -> dict[str, Any]:
    async with _http(server, client) as http:
        response = await http.post("/v1/age/challenge", json={"band": "16+"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
