"""People with age bands for safety-policy tests: an in-process AnonCreds issuer (its check
approves the birth date it is given), a trust registry file the server reads, and clients
registered with a filled wallet, so registration proves the band at once (real proofs,
real verification by the real server)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from covey.age import Approved, CheckOutcome, Issuer, years_before
from covey.client import Client
from tests.integration._age import FAST_SCRYPT, PASSPHRASE, server_env, today, write_registry


class _Declared:
    def review(self, evidence: dict[str, str]) -> CheckOutcome:
        return Approved(date.fromisoformat(evidence["birth_date"]))


class BandIssuer:
    """One issuer for a test module; `registry` is the file servers are pointed at."""

    def __init__(self, root: Path) -> None:
        self.issuer = Issuer.create(root / "issuer", "did:web:registry.example", _Declared(),
                                    capacity=200)
        self.registry = root / "registry.json"
        write_registry(self.registry, [self.issuer.publish()])

    def wallet(self, years: int) -> bytes:
        """A serialized wallet holding a credential for someone `years` old today."""
        from covey.age import Wallet

        wallet = Wallet.create()
        result = self.issuer.submit_request(
            wallet.request_credential(self.issuer.offer()),
            {"birth_date": years_before(today(), years).isoformat()})
        assert result.message is not None
        wallet.store_credential(result.message)
        return wallet.to_bytes()

    def place_tails(self, store: Path) -> None:
        """The public tails file beside a device store (what the client proves with)."""
        tails = Path(f"{store}.tails")
        tails.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.issuer.tails_path, tails / self.issuer.tails_path.name)


@pytest.fixture(scope="module")
def band_issuer(tmp_path_factory: pytest.TempPathFactory) -> BandIssuer:
    return BandIssuer(tmp_path_factory.mktemp("band-issuer"))


@pytest.fixture
def trust_band_issuer(band_issuer: BandIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Request before `covey_server` so the server trusts the issuer."""
    for key, value in server_env(band_issuer.registry).items():
        monkeypatch.setenv(key, value)


class People:
    """Registers clients on one server with the band asked for."""

    def __init__(self, server: Any, issuer: BandIssuer, tmp: Path) -> None:
        self.server = server
        self.issuer = issuer
        self.tmp = tmp
        self.clients: list[Client] = []

    async def _register(self, handle: str, wallet: bytes | None, **kw: Any) -> Client:
        store = self.tmp / f"{handle}.db"
        if wallet is not None:
            self.issuer.place_tails(store)
        client = await Client.register(self.server.url, handle, store, PASSPHRASE,
                                       scrypt_n=FAST_SCRYPT, wallet=wallet, **kw)
        self.clients.append(client)
        return client

    async def adult(self, handle: str, **kw: Any) -> Client:
        """A verified 16+ account (30 years old)."""
        return await self._register(handle, self.issuer.wallet(30), **kw)

    async def child(self, handle: str, **kw: Any) -> Client:
        """A verified under-16 account (12 years old)."""
        return await self._register(handle, self.issuer.wallet(12), **kw)

    async def unverified(self, handle: str, **kw: Any) -> Client:
        return await self._register(handle, None, **kw)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


@pytest.fixture
async def people(trust_band_issuer: None, covey_server: Any, band_issuer: BandIssuer,
                 tmp_path: Path) -> Any:
    group = People(covey_server, band_issuer, tmp_path)
    try:
        yield group
    finally:
        await group.close()
