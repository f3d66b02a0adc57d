"""Proof relay: an adult cannot have a child's wallet answer the adult's own under-16
challenge. A real `covey server` (SQLite and PostgreSQL) binds each challenge's nonce to
its origin and the account; the Covey wallet checks both and recomputes the nonce."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from covey.age import AgeBand, AgeChallenge, TrustRegistry, Verifier
from covey.age.challenge import derive_nonce
from covey.client import Client, ClientError
from covey.client._age import answer_challenge
from tests.integration._safety import BandIssuer, People, band_issuer, people, trust_band_issuer

__all__ = ["band_issuer", "people", "trust_band_issuer"]  # fixtures

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


async def _challenge(server: Any, client: Client, band: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30, headers={
            "Authorization": f"Bearer {client._api.token}"}) as http:
        response = await http.post("/v1/age/challenge", json={"band": band})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _answer(client: Client, challenge: dict[str, Any]) -> dict[str, Any]:
    """What the Covey wallet of `client` answers (or refuses)."""
    return await answer_challenge(client._age.wallet, challenge, client._api.server_url,
                                  client.user_id, client._age._tails_dir)


async def test_an_adult_relaying_its_under_16_challenge_to_a_child_wallet_fails(
        people: People, covey_server: Any, band_issuer: BandIssuer) -> None:
    mallory = await people.adult("mallory")
    kim = await people.child("kim")
    assert (await kim.whoami()).age.band == "under-16"

    # The challenge names the server and the account, and its nonce recomputes from them.
    own = await _challenge(covey_server, kim, "under-16")
    assert own["origin"] == covey_server.url
    assert own["account"] == kim.user_id
    assert AgeChallenge.from_json(own).binding_holds()
    assert len(own["nonce"]) <= 25 and own["nonce"].isdigit()  # an AnonCreds nonce

    # Mallory's under-16 challenge, shown to kim's wallet by a look-alike "age check".
    relayed = await _challenge(covey_server, mallory, "under-16")
    with pytest.raises(ClientError) as refused:
        await _answer(kim, relayed)
    assert refused.value.code == "challenge_refused"
    assert "another account" in refused.value.message
    # Naming kim's account instead does not help: the nonce no longer recomputes.
    with pytest.raises(ClientError) as renamed:
        await _answer(kim, relayed | {"account": kim.user_id})
    assert "not bound" in renamed.value.message
    # Nor does a look-alike verifier's own challenge for kim's account.
    look_alike = Verifier(TrustRegistry.from_entries([band_issuer.issuer.publish()]))
    phished = look_alike.make_challenge(AgeBand.UNDER_16, account=kim.user_id,
                                        origin="https://covey-age-check.example")
    with pytest.raises(ClientError) as elsewhere:
        await _answer(kim, phished.to_json())
    assert "https://covey-age-check.example" in elsewhere.value.message
    assert (await mallory.whoami()).age.band == "16+"

    # Kim's wallet answers its own challenge, and the server accepts it.
    submission = await _answer(kim, own)
    assert (await kim._api.age_presentation(submission)).band == "under-16"


def test_the_nonce_is_derived_from_origin_account_and_seed() -> None:
    seed = b"\x01" * 32
    nonce = derive_nonce("https://chat.example", "u1", seed)
    assert nonce.isdigit() and int(nonce) < 2**80
    assert nonce == derive_nonce("https://chat.example", "u1", seed)
    assert nonce != derive_nonce("https://chat.example", "u2", seed)
    assert nonce != derive_nonce("https://chat.example.org", "u1", seed)
    assert nonce != derive_nonce("https://chat.example", "u1", b"\x02" * 32)
