"""A bank change made by one process (`covey bank`) is matchable in others within 10 s,
without a restart: a second process's `BankIndex` and one in this process."""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from covey.safety.images import PdqHash
from covey.server.services.bank_index import BankIndex
from covey.server.storage import Repository, create_engine, upgrade_to_head
from covey.server.storage.banks import BankStorage, NewEntry
from tests.integration.conftest import BACKENDS
from tests.integration.test_pdq_cli import covey, migrated

ROOT = Path(__file__).resolve().parents[2]
TARGET = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
NEAR = "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22"  # distance 2
RELOAD_S = 10.0


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    return migrated(str(request.getfixturevalue("_database_" + request.param)))


class Watcher:
    """The `_bank_watcher` subprocess and its lines."""

    def __init__(self, database_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration._bank_watcher", database_url, NEAR],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict[str, object]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def next(self, timeout: float) -> dict[str, object]:
        return self.lines.get(timeout=timeout)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def test_change_reaches_another_process_within_10s(database_url: str) -> None:
    db = ("--database-url", database_url)
    covey("bank", "create", "known", *db)
    watcher = Watcher(database_url)
    try:
        assert watcher.next(timeout=120)["match"] is None  # loaded, nothing matches yet
        covey("bank", "import", "known", "-", *db, stdin=f"{TARGET},planted\n")
        added = time.monotonic()
        line = watcher.next(timeout=RELOAD_S)
        assert line["match"] == {"bank": "known", "distance": 2}
        assert time.monotonic() - added < RELOAD_S
        covey("bank", "remove", "known", *db)
        removed = time.monotonic()
        assert watcher.next(timeout=RELOAD_S)["match"] is None
        assert time.monotonic() - removed < RELOAD_S
    finally:
        watcher.stop()


async def test_in_process_loaders_follow_adds_and_removals(database_url: str) -> None:
    engine = create_engine(database_url)
    await upgrade_to_head(engine)
    repo = Repository(engine)
    repo.start()
    banks = BankStorage(repo)
    index = BankIndex(banks)  # the default poll interval (2 s)
    other = BankIndex(banks, poll_interval_s=0.2)
    await index.load()
    index.start()
    other.start()
    query = [PdqHash.from_hex(NEAR)]

    async def until(expected: bool, loader: BankIndex) -> float:
        start = time.monotonic()
        while (await loader.match(query) is not None) != expected:
            assert time.monotonic() - start < RELOAD_S, "not reloaded within 10 s"
            await asyncio.sleep(0.05)
        return time.monotonic() - start

    try:
        await banks.create_bank("mine", 0)
        assert await index.match(query) is None
        await banks.add_entries("mine", [NewEntry(bytes.fromhex(TARGET), {"text": "x"})], 0)
        await until(True, index)
        await until(True, other)
        match = await index.match(query)
        assert match is not None and (match.entry.meta, match.distance) == ({"text": "x"}, 2)
        assert await banks.remove_entries("mine", [bytes.fromhex(TARGET)]) == 1
        assert await index.match(query) is None  # the entry is looked up, so gone at once
        start = time.monotonic()
        while len(index) or len(other):  # and the loaders drop it from their matchers
            assert time.monotonic() - start < RELOAD_S, "removal not loaded within 10 s"
            await asyncio.sleep(0.05)
    finally:
        await index.stop()
        await other.stop()
        await repo.close()
