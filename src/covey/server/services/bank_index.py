"""`BankIndex`: a PDQ matcher kept in sync with the hash banks in the database.

One full load, then incremental updates: every `poll_interval_s` it reads the banks'
version (one indexed row) and, when it moved, only the entries added and removed since.
A change made by any process (`covey bank`, another relay) is matchable here within one
poll interval, without a restart. (NATS invalidation can later wake the poll early.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from covey.safety.images import MATCH_DISTANCE, PdqHash, PdqMatcher
from covey.safety.images.matcher import MULTIHASH_MIN
from covey.server.storage.banks import BankStorage, EntryRow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BankMatch:
    """A query's nearest banked entry: which bank, which hash, its metadata, how far."""

    entry: EntryRow
    distance: int
    query_index: int  # which dihedral variant of the query matched (0: as sent)


def _codes(hashes: Sequence[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(-1, 32)


class BankIndex:
    def __init__(self, storage: BankStorage, *, max_distance: int = MATCH_DISTANCE,
                 poll_interval_s: float = 2.0, multihash_min: int = MULTIHASH_MIN) -> None:
        self._storage = storage
        self._matcher = PdqMatcher(max_distance, multihash_min=multihash_min)
        self._poll_interval_s = poll_interval_s
        self._version = -1
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def version(self) -> int:
        """The bank version this index reflects (-1 before the first load)."""
        return self._version

    def __len__(self) -> int:
        return len(self._matcher)

    async def load(self) -> None:
        """Replace the index with everything in the database."""
        async with self._lock:
            await self._load_locked()

    async def _load_locked(self) -> None:
        matcher = PdqMatcher(self._matcher.max_distance,
                             multihash_min=self._matcher.multihash_min)
        loaded = 0
        async for version, ids, hashes in self._storage.load_all():
            loaded = version
            if ids:
                matcher.add(ids, _codes(hashes))
        self._matcher, self._version = matcher, loaded

    async def refresh(self) -> bool:
        """Apply what changed since the last load or refresh; whether anything did."""
        async with self._lock:
            if self._version < 0:
                await self._load_locked()
                return True
            changes = await self._storage.changes_since(self._version)
            if changes.version <= self._version:
                return False
            if changes.reload:
                await self._load_locked()
                return True
            self._matcher.remove(changes.removed_ids)
            if changes.added_ids:
                self._matcher.add(changes.added_ids, _codes(changes.added_pdq))
            self._version = changes.version
            return True

    async def match(self, queries: Sequence[PdqHash], *,
                    bank: str | None = None) -> BankMatch | None:
        """The nearest banked entry (of `bank`, or of any bank) within the distance of any
        query hash, or None."""
        matches = self._matcher.search(queries)
        for start in range(0, len(matches), 64):
            chunk = matches[start:start + 64]
            entries = await self._storage.entries_by_id([m.entry_id for m in chunk])
            for found in chunk:
                entry = entries.get(found.entry_id)  # None: removed since the last refresh
                if entry is not None and (bank is None or entry.bank == bank):
                    return BankMatch(entry, found.distance, found.query_index)
        return None

    # --- background refresh --------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="covey-bank-index")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: keep the last index, try again
                log.warning("hash bank refresh failed; keeping the last index", exc_info=True)
            await asyncio.sleep(self._poll_interval_s)
