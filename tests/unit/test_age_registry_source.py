"""The relay's trust-registry source: a signed file re-read when it changes, an HTTPS URL
fetched again after `refresh_s`, SIGHUP-style forced reloads, unsigned or badly signed
registries refused (the last good one stays), and stale registries failing closed."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import httpx
import pytest

from covey.age.signed import OperatorKey, RegistryUnsigned, open_signed
from covey.server.services.age import RegistrySource
from tests.unit._age_fixtures import covey_issuer, raw_issuer

OPERATOR = OperatorKey.generate()


def _write(path: Path, *entries: dict[str, object], key: OperatorKey = OPERATOR,
           signed_at_ms: int | None = None) -> None:
    key.write(path, list(entries), signed_at_ms)


def _source(spec: str, **kw: object) -> RegistrySource:
    return RegistrySource(spec, refresh_s=kw.pop("refresh_s", 60),  # type: ignore[arg-type]
                          key=OPERATOR.verify_key, **kw)  # type: ignore[arg-type]


async def test_a_file_registry_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    _write(path, covey_issuer().publish())
    source = _source(str(path))
    assert (await source.fresh()).cred_def_ids() == [covey_issuer().cred_def_id]
    assert source.health()["state"] == "current"

    _write(path, covey_issuer().publish(), raw_issuer().entry())
    await asyncio.sleep(0.6)
    assert len((await source.fresh()).issuers()) == 2

    path.write_text("{not json")  # a broken file: the last good registry stays
    await asyncio.sleep(0.6)
    assert len((await source.fresh()).issuers()) == 2
    assert source.health()["state"] == "reload_failing"

    _write(path)
    source.reload_now()  # what SIGHUP does
    assert (await source.fresh()).issuers() == []


async def test_unsigned_and_badly_signed_registries_never_replace_the_good_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "registry.json"
    _write(path, covey_issuer().publish())
    source = _source(str(path))
    assert len((await source.fresh()).issuers()) == 1

    # The old, unsigned format, naming an issuer of the attacker's choosing.
    path.write_text(json.dumps({"issuers": [raw_issuer().entry()]}))
    source.reload_now()
    assert (await source.fresh()).cred_def_ids() == [covey_issuer().cred_def_id]
    assert "not a signed registry" in caplog.text

    # Signed, but by another key.
    _write(path, raw_issuer().entry(), key=OperatorKey.generate())
    source.reload_now()
    assert (await source.fresh()).cred_def_ids() == [covey_issuer().cred_def_id]

    # The operator's signature over other bytes: the payload was rewritten.
    _write(path, covey_issuer().publish())
    envelope = json.loads(path.read_bytes())
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["issuers"].append(raw_issuer().entry())
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    path.write_text(json.dumps(envelope))
    source.reload_now()
    assert (await source.fresh()).cred_def_ids() == [covey_issuer().cred_def_id]
    with pytest.raises(RegistryUnsigned):
        open_signed(path.read_bytes(), OPERATOR.verify_key)
    assert source.health()["problems"][-1].startswith("last reload failed:")


async def test_an_older_signed_registry_is_refused_as_a_replay(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    _write(path, covey_issuer().publish(), raw_issuer().entry())
    source = _source(str(path))
    assert len((await source.fresh()).issuers()) == 2
    _write(path, covey_issuer().publish(), signed_at_ms=int(time.time() * 1000) - 60_000)
    source.reload_now()
    assert len((await source.fresh()).issuers()) == 2


async def test_a_stale_registry_fails_closed_and_says_why(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "registry.json"
    _write(path, covey_issuer().publish(), signed_at_ms=int(time.time() * 1000) - 10_000)
    source = _source(str(path), max_age_s=5)
    assert (await source.fresh()).issuers() == []
    health = source.health()
    assert health["state"] == "stale"
    assert "the registry was signed" in health["problems"][0]
    assert "is stale, failing closed" in caplog.text
    assert len((await source.current()).issuers()) == 1  # kept, but vouching for nobody

    _write(path, covey_issuer().publish())  # the operator signs again
    await asyncio.sleep(0.6)
    assert len((await source.fresh()).issuers()) == 1
    assert source.health()["state"] == "current"


async def test_an_issuer_with_an_old_status_list_vouches_for_nobody(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    revocable = covey_issuer().publish()
    _write(path, revocable, raw_issuer().entry())
    age_s = time.time() - revocable["revocation"]["status_list"]["timestamp"]
    source = _source(str(path), status_max_age_s=max(age_s - 1, 0.001))
    fresh = await source.fresh()
    assert revocable["cred_def_id"] not in fresh.cred_def_ids()
    problems = source.health()["problems"]
    assert any("revocation status list is" in p and revocable["issuer_id"] in p
               for p in problems)


async def test_a_missing_registry_file_means_nobody_is_trusted_until_it_appears(
        tmp_path: Path) -> None:
    path = tmp_path / "later.json"
    source = _source(str(path))
    assert (await source.fresh()).issuers() == []
    _write(path, raw_issuer().entry())
    await asyncio.sleep(0.6)
    assert (await source.fresh()).cred_def_ids() == [raw_issuer().cred_def_id]


def test_plain_http_and_a_missing_key_are_refused() -> None:
    with pytest.raises(ValueError, match="https"):
        RegistrySource("http://registry.example/r.json", 60, key=OPERATOR.verify_key)
    with pytest.raises(ValueError, match="public key"):
        RegistrySource("/etc/covey/registry.json", 60)


async def test_an_https_registry_is_fetched_again_after_refresh_s(tmp_path: Path) -> None:
    """The HTTPS fetch path; the remote server is an httpx transport (not ours to test)."""
    served: dict[str, bytes] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.scheme == "https"
        body = served.get("registry")
        return httpx.Response(404) if body is None else httpx.Response(200, content=body)

    _write(tmp_path / "r1.json", covey_issuer().publish())
    served["registry"] = (tmp_path / "r1.json").read_bytes()
    source = RegistrySource("https://registry.example/r.json", refresh_s=0.3,
                            key=OPERATOR.verify_key, transport=httpx.MockTransport(handler))
    assert len((await source.fresh()).issuers()) == 1
    _write(tmp_path / "r2.json", covey_issuer().publish(), raw_issuer().entry())
    served["registry"] = (tmp_path / "r2.json").read_bytes()
    assert len((await source.fresh()).issuers()) == 1  # not yet
    await asyncio.sleep(0.4)
    assert len((await source.fresh()).issuers()) == 2
    del served["registry"]  # 404: keep what we had
    await asyncio.sleep(0.4)
    assert len((await source.fresh()).issuers()) == 2
