"""`PdqMatcher`: radius search over PDQ hashes with a FAISS binary index.

Built once, then updated in place: additions go straight into the FAISS index (both
`IndexBinaryFlat` and `IndexBinaryMultiHash` take adds), removals are tombstoned and the
index is compacted only when a quarter of it is dead (multi-hash has no `remove_ids`).
The exhaustive flat index is used unless `multihash_min` (> 0) is reached, then
multi-index hashing; docs/detection.md gives the measurements behind that default."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from covey.safety.images._hash import MATCH_DISTANCE, PDQ_BITS, PDQ_BYTES, PdqHash

# 0: always flat. Measured here (docs/detection.md#matching), FAISS's multi-hash index was
# slower than the flat scan at every size up to 1M hashes and took ten times the memory.
MULTIHASH_MIN = 0
_MIH_TABLES = 16  # 16 sub-hashes of 16 bits: distance <= 31 leaves one within 1 bit
_COMPACT_DEAD_FRACTION = 0.25

Codes = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Match:
    """The nearest of a query's hashes to one indexed entry."""

    entry_id: int
    distance: int
    query_index: int  # which query hash (for dihedral queries: which rotation or mirror)


def as_codes(hashes: Iterable[PdqHash]) -> Codes:
    """An (n, 32) uint8 array of hashes, the layout FAISS binary indexes take."""
    joined = b"".join(h.value for h in hashes)
    return np.frombuffer(joined, dtype=np.uint8).reshape(-1, PDQ_BYTES).copy()


class PdqMatcher:
    """Entries (an int64 id and a hash each) searched at Hamming distance <= `max_distance`.

    Not thread-safe: one owner mutates it (the bank loader); searches are quick reads."""

    def __init__(self, max_distance: int = MATCH_DISTANCE, *,
                 multihash_min: int = MULTIHASH_MIN) -> None:
        if not 0 <= max_distance < PDQ_BITS:
            raise ValueError(f"max_distance must be within 0..{PDQ_BITS - 1}")
        self.max_distance = max_distance
        self.multihash_min = multihash_min
        self._index: faiss.IndexBinary = faiss.IndexBinaryFlat(PDQ_BITS)
        self._ids = np.empty(0, dtype=np.int64)  # FAISS position -> entry id
        self._alive = np.empty(0, dtype=np.bool_)
        self._dead = 0

    # --- size ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._ids.size) - self._dead

    @property
    def kind(self) -> str:
        """`flat` or `multihash`: which FAISS index serves searches now."""
        return "multihash" if isinstance(self._index, faiss.IndexBinaryMultiHash) else "flat"

    # --- updates -------------------------------------------------------------------------

    def add(self, entry_ids: npt.ArrayLike, codes: Codes) -> None:
        """Add entries; ids must be new (an id already present is not replaced)."""
        ids = np.asarray(entry_ids, dtype=np.int64).reshape(-1)
        codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, PDQ_BYTES)
        if ids.size != codes.shape[0]:
            raise ValueError("one id per hash")
        if ids.size == 0:
            return
        if self.kind == "flat" and self._wants_multihash(self._ids.size + ids.size):
            self._rebuild(extra_ids=ids, extra_codes=codes)
            return
        self._index.add(codes)
        self._ids = np.concatenate([self._ids, ids])
        self._alive = np.concatenate([self._alive, np.ones(ids.size, dtype=np.bool_)])

    def remove(self, entry_ids: npt.ArrayLike) -> int:
        """Remove entries by id (unknown ids are ignored); how many were removed."""
        ids = np.asarray(entry_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0 or self._ids.size == 0:
            return 0
        hit = np.isin(self._ids, ids) & self._alive
        removed = int(hit.sum())
        if removed:
            self._alive[hit] = False
            self._dead += removed
            if self._dead > _COMPACT_DEAD_FRACTION * self._ids.size:
                self._rebuild()
        return removed

    def clear(self) -> None:
        self._index = faiss.IndexBinaryFlat(PDQ_BITS)
        self._ids = np.empty(0, dtype=np.int64)
        self._alive = np.empty(0, dtype=np.bool_)
        self._dead = 0

    def _wants_multihash(self, size: int) -> bool:
        return 0 < self.multihash_min <= size

    def _codes(self) -> Codes:
        index: Any = self._index  # both kinds keep their codes in a flat `xb` vector
        storage = index.storage if self.kind == "multihash" else index
        codes: Codes = faiss.vector_to_array(storage.xb).reshape(-1, PDQ_BYTES)
        return codes

    def _rebuild(self, *, extra_ids: npt.NDArray[np.int64] | None = None,
                 extra_codes: Codes | None = None) -> None:
        """Compact away tombstones and pick the index kind for the new size."""
        keep = self._alive
        ids, codes = self._ids[keep], self._codes()[keep]
        if extra_ids is not None and extra_codes is not None:
            ids, codes = np.concatenate([ids, extra_ids]), np.concatenate([codes, extra_codes])
        index: faiss.IndexBinary
        if self._wants_multihash(int(ids.size)):
            index = faiss.IndexBinaryMultiHash(PDQ_BITS, _MIH_TABLES, PDQ_BITS // _MIH_TABLES)
        else:
            index = faiss.IndexBinaryFlat(PDQ_BITS)
        if ids.size:
            index.add(np.ascontiguousarray(codes))
        self._index, self._ids = index, ids
        self._alive = np.ones(ids.size, dtype=np.bool_)
        self._dead = 0

    # --- search --------------------------------------------------------------------------

    def search(self, queries: Sequence[PdqHash] | Codes) -> list[Match]:
        """Entries within `max_distance` of any query hash, nearest first; each entry once,
        with the query hash that came nearest."""
        codes = queries if isinstance(queries, np.ndarray) else as_codes(queries)
        if codes.shape[0] == 0 or self._ids.size == 0:
            return []
        if isinstance(self._index, faiss.IndexBinaryMultiHash):
            # Pigeonhole: within d bits, one of the 16 sub-hashes differs by <= d // 16.
            self._index.nflip = self.max_distance // _MIH_TABLES
        limits, distances, positions = self._index.range_search(codes, self.max_distance + 1)
        best: dict[int, Match] = {}
        for query_index in range(codes.shape[0]):
            start, end = int(limits[query_index]), int(limits[query_index + 1])
            for position, distance in zip(positions[start:end], distances[start:end],
                                          strict=True):
                if not self._alive[position]:
                    continue
                entry_id = int(self._ids[position])
                found = best.get(entry_id)
                if found is None or distance < found.distance:
                    best[entry_id] = Match(entry_id, int(distance), query_index)
        return sorted(best.values(), key=lambda m: (m.distance, m.entry_id))
