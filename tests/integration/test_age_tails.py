"""A malicious issuer's tails file: a real `covey issuer serve` whose published material is
tampered with, a real `covey server` (SQLite and PostgreSQL), a real client. The issuer
names the tails file, so a name like `../../x` must write nothing anywhere, and bytes
that do not hash to the name must never be saved."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from covey.age import years_before
from covey.client import Client
from covey.errors import CoveyError
from tests.integration._age import (
    FAST_SCRYPT,
    PASSPHRASE,
    IssuerService,
    server_env,
    today,
)

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerService]:
    service = IssuerService(tmp_path_factory.mktemp("age-issuer-tails")).start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(autouse=True)
def _trust_env(issuer: IssuerService, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in server_env(issuer.registry).items():
        monkeypatch.setenv(key, value)


def _tamper(issuer: IssuerService, tails_hash: str) -> bytes:
    """Publish `tails_hash` as the issuing registry's tails file name, in the entry and in
    the definition's `tailsHash` (a malicious issuer makes them agree). Returns the
    original public.json."""
    public = issuer.dir / "public.json"
    original = public.read_bytes()
    document = json.loads(original)
    for registry in [document["revocation"], *document.get("revocation_registries", [])]:
        registry["tails_hash"] = tails_hash
        registry["rev_reg_def"]["value"]["tailsHash"] = tails_hash
    public.write_text(json.dumps(document))
    return original


async def _request(client: Client, issuer: IssuerService) -> Any:
    ticket: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(client.request_age_credential(
        issuer.url, {"student_id": "S-1"}, within_s=60,
        on_pending=lambda t: ticket.set_result(t)))
    done, _ = await asyncio.wait({task, ticket}, timeout=30,
                                 return_when=asyncio.FIRST_COMPLETED)
    if ticket in done:
        await asyncio.to_thread(issuer.operator().approve, ticket.result(),
                                years_before(today(), 30))
    return await asyncio.wait_for(task, 60)


async def test_a_path_in_the_tails_hash_is_refused_and_writes_nothing(
        issuer: IssuerService, covey_server: Any, tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    client = await Client.register(covey_server.url, "tess", tmp_path / "dev" / "tess.db",
                                   PASSPHRASE, scrypt_n=FAST_SCRYPT, connect=False)
    original = _tamper(issuer, "../../x")
    try:
        with pytest.raises(CoveyError) as refused:
            await _request(client, issuer)
        assert "tails hash" in refused.value.message
        assert client.age_credentials() == []
        assert not (tmp_path / "x").exists()
    finally:
        (issuer.dir / "public.json").write_bytes(original)
        await client.close()


async def test_tails_bytes_that_do_not_match_their_hash_are_not_saved(
        issuer: IssuerService, covey_server: Any, tmp_path: Path) -> None:
    client = await Client.register(covey_server.url, "uma", tmp_path / "uma.db",
                                   PASSPHRASE, scrypt_n=FAST_SCRYPT, connect=False)
    tails = issuer.operator().tails_path
    original = tails.read_bytes()
    tails.write_bytes(b"\0" * len(original))  # the issuer serves other bytes under the name
    try:
        with pytest.raises(CoveyError) as refused:
            await _request(client, issuer)
        assert refused.value.code == "tails_refused"
        assert not (Path(f"{tmp_path / 'uma.db'}.tails") / tails.name).exists()
        # The issuer fixes its file: the next proof fetches it, checks it and proves.
        tails.write_bytes(original)
        assert (await client.prove_age()).band == "16+"
        assert (Path(f"{tmp_path / 'uma.db'}.tails") / tails.name).read_bytes() == original
    finally:
        tails.write_bytes(original)
        await client.close()
