"""The relay's trust-registry source: a file re-read when it changes, a URL fetched again
after `refresh_s`, SIGHUP-style forced reloads, and a bad registry keeping the last good one."""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from covey.server.services import age as age_service
from covey.server.services.age import RegistrySource
from tests.support.age_fixtures import covey_issuer, raw_issuer


def _write(path: Path, *entries: dict[str, object]) -> None:
    path.write_text(json.dumps({"issuers": list(entries)}))


async def test_a_file_registry_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    _write(path, covey_issuer().publish())
    source = RegistrySource(str(path), refresh_s=60)
    assert (await source.current()).cred_def_ids() == [covey_issuer().cred_def_id]

    _write(path, covey_issuer().publish(), raw_issuer().entry())
    await asyncio.sleep(0.6)
    assert len((await source.current()).issuers()) == 2

    path.write_text("{not json")  # a broken file: the last good registry stays
    await asyncio.sleep(0.6)
    assert len((await source.current()).issuers()) == 2

    _write(path)
    source.reload_now()  # what SIGHUP does
    assert (await source.current()).issuers() == []


async def test_a_missing_registry_file_means_nobody_is_trusted_until_it_appears(
        tmp_path: Path) -> None:
    path = tmp_path / "later.json"
    source = RegistrySource(str(path), refresh_s=60)
    assert (await source.current()).issuers() == []
    _write(path, raw_issuer().entry())
    await asyncio.sleep(0.6)
    assert (await source.current()).cred_def_ids() == [raw_issuer().cred_def_id]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/registry.json", tmp_path
    finally:
        server.shutdown()


async def test_a_url_registry_is_fetched_again_after_refresh_s(
        served: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url, root = served
    # The source's monotonic clock, moved by hand: no sleeping, and a slow fetch on a
    # busy machine cannot run past refresh_s.
    clock = [1000.0]
    monkeypatch.setattr(age_service, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    _write(root / "registry.json", covey_issuer().publish())
    source = RegistrySource(url, refresh_s=0.3)
    assert len((await source.current()).issuers()) == 1
    _write(root / "registry.json", covey_issuer().publish(), raw_issuer().entry())
    clock[0] += 0.2
    assert len((await source.current()).issuers()) == 1  # not yet
    clock[0] += 0.2
    assert len((await source.current()).issuers()) == 2
    (root / "registry.json").unlink()  # 404: keep what we had
    clock[0] += 0.4
    assert len((await source.current()).issuers()) == 2
