"""PDQ hashing of generated images: the hex order matches threatexchange's, copies that
PDQ is built to survive match, low-quality and unrelated images do not, bad input is
refused clearly."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from covey.safety.images import (
    MATCH_DISTANCE,
    ImageRejected,
    InvalidHash,
    PdqHash,
    PdqMatcher,
    as_codes,
    hash_image,
    query_hashes,
)
from tests.unit._pdq_images import MATCHING, jpeg, low_contrast, png, scene

SEEDS = (1, 2, 3, 4)


def _nearest(original: PdqHash, copy: bytes) -> int:
    return min(h.distance(original) for h in query_hashes(copy).hashes)


def test_hex_is_threatexchanges_for_the_same_pixels() -> None:
    from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

    data = png(scene(7, (400, 300)))  # under 512 px: no downscaling on our side
    ours = hash_image(data)
    theirs, quality = pdq_from_bytes(data)
    assert (ours.pdq.hex, ours.quality) == (theirs, quality)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("transform", sorted(MATCHING))
def test_transformed_copy_matches(seed: int, transform: str) -> None:
    base = scene(seed)
    original = hash_image(png(base))
    assert original.usable
    copy = png(MATCHING[transform](base))
    matcher = PdqMatcher()
    matcher.add([1], as_codes([original.pdq]))
    query = query_hashes(copy)
    assert query.usable
    found = matcher.search(query.hashes)
    assert [m.entry_id for m in found] == [1], _nearest(original.pdq, copy)


@pytest.mark.parametrize("seed", SEEDS)
def test_low_contrast_copy_is_low_quality(seed: int) -> None:
    copy = hash_image(png(low_contrast(scene(seed))))
    assert copy.quality < 50
    assert not copy.usable


def test_unrelated_images_do_not_match() -> None:
    banked = [hash_image(png(scene(seed))).pdq for seed in range(20)]
    matcher = PdqMatcher()
    matcher.add(list(range(len(banked))), as_codes(banked))
    for seed in range(100, 130):
        assert matcher.search(query_hashes(png(scene(seed))).hashes) == [], seed


def test_large_jpeg_is_hashed_like_a_small_copy() -> None:
    base = scene(5, (2400, 1800))  # decoded at reduced size through draft()
    large = hash_image(jpeg(base))
    small = hash_image(png(base.resize((480, 360))))
    assert large.pdq.distance(small.pdq) <= MATCH_DISTANCE


def test_dihedral_query_starts_with_the_image_as_it_is() -> None:
    data = png(scene(3))
    assert query_hashes(data).hashes[0] == hash_image(data).pdq
    assert len(set(query_hashes(data).hashes)) == 8


def test_not_an_image_is_refused() -> None:
    with pytest.raises(ImageRejected, match="not an image"):
        hash_image(b"%PDF-1.4 definitely not pixels")


def test_truncated_image_is_refused() -> None:
    with pytest.raises(ImageRejected):
        hash_image(jpeg(scene(2))[:2000])


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, "PNG")  # 100 Mpx in a few kB
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(ImageRejected, match="pixel limit"):
        hash_image(bomb.getvalue())


def test_hash_hex_round_trip_and_distance() -> None:
    a = PdqHash.from_hex("f" * 64)
    b = PdqHash.from_hex("F" * 63 + "0")
    assert a.hex == "f" * 64
    assert a.distance(b) == 4
    with pytest.raises(InvalidHash, match="64-hex"):
        PdqHash.from_hex("abc")
