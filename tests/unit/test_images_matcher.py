"""The FAISS matcher against a brute-force reference: same matches for the flat and the
multi-hash index, through additions, removals and compaction."""

from __future__ import annotations

import numpy as np
import pytest

from covey.safety.images import PdqHash, PdqMatcher


def _random_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 32), dtype=np.uint8)


def _near(rng: np.random.Generator, code: np.ndarray, flips: int) -> np.ndarray:
    bits = np.unpackbits(code)
    bits[rng.choice(256, flips, replace=False)] ^= 1
    return np.packbits(bits)


def _brute(ids: list[int], codes: np.ndarray, query: np.ndarray, radius: int) -> set[int]:
    distances = np.unpackbits(codes ^ query, axis=1).sum(axis=1)
    return {ids[i] for i in np.nonzero(distances <= radius)[0]}


@pytest.mark.parametrize("multihash_min", [0, 1], ids=["flat", "multihash"])
def test_matches_equal_brute_force_through_updates(multihash_min: int) -> None:
    rng = np.random.default_rng(5)
    codes = _random_codes(rng, 3000)
    ids = list(range(1000, 4000))
    matcher = PdqMatcher(31, multihash_min=multihash_min)
    matcher.add(ids[:2000], codes[:2000])
    matcher.add(ids[2000:], codes[2000:])  # incremental
    assert matcher.kind == ("flat" if multihash_min == 0 else "multihash")
    removed = set(ids[::3])
    assert matcher.remove(sorted(removed)) == len(removed)  # compacts (a third is dead)
    assert len(matcher) == 3000 - len(removed)
    live = [i for i in ids if i not in removed]
    live_codes = codes[[i - 1000 for i in live]]
    for target in rng.choice(3000, 40, replace=False):
        query = _near(rng, codes[target], int(rng.integers(0, 40)))
        expected = _brute(live, live_codes, query, 31)
        found = matcher.search(query[None, :])
        assert {m.entry_id for m in found} == expected
        assert [m.distance for m in found] == sorted(m.distance for m in found)


def test_each_entry_once_with_the_nearest_query() -> None:
    rng = np.random.default_rng(1)
    code = _random_codes(rng, 1)[0]
    matcher = PdqMatcher()
    matcher.add([42], code[None, :])
    far, close = _near(rng, code, 20), _near(rng, code, 3)
    found = matcher.search(np.stack([far, close]))
    assert [(m.entry_id, m.distance, m.query_index) for m in found] == [(42, 3, 1)]


def test_distance_setting_is_the_radius() -> None:
    rng = np.random.default_rng(2)
    code = _random_codes(rng, 1)[0]
    query = _near(rng, code, 12)
    strict, loose = PdqMatcher(11), PdqMatcher(12)
    for matcher in (strict, loose):
        matcher.add([1], code[None, :])
    assert strict.search(query[None, :]) == []
    assert [m.distance for m in loose.search([PdqHash(query.tobytes())])] == [12]


def test_removed_entry_no_longer_matches_and_unknown_ids_are_ignored() -> None:
    rng = np.random.default_rng(3)
    codes = _random_codes(rng, 10)
    matcher = PdqMatcher()
    matcher.add(range(10), codes)
    assert matcher.remove([4, 99]) == 1
    assert matcher.search(codes[4][None, :]) == []
    assert [m.entry_id for m in matcher.search(codes[5][None, :])] == [5]
    matcher.add([4], codes[4][None, :])  # re-added after removal
    assert [m.entry_id for m in matcher.search(codes[4][None, :])] == [4]


def test_switches_to_multihash_when_it_grows() -> None:
    rng = np.random.default_rng(4)
    codes = _random_codes(rng, 300)
    matcher = PdqMatcher(multihash_min=200)
    matcher.add(range(150), codes[:150])
    assert matcher.kind == "flat"
    matcher.add(range(150, 300), codes[150:])
    assert matcher.kind == "multihash"
    assert [m.entry_id for m in matcher.search(codes[10][None, :])] == [10]
    assert [m.entry_id for m in matcher.search(codes[250][None, :])] == [250]


def test_default_is_flat_at_any_size() -> None:
    rng = np.random.default_rng(6)
    matcher = PdqMatcher()
    matcher.add(range(5000), _random_codes(rng, 5000))
    assert matcher.kind == "flat"
