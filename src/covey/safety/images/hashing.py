"""PDQ hashes of images with Meta's `pdqhash` (the reference C++ PDQ; never our own).

`hash_image` gives one hash for a bank or an investigator; `query_hashes` gives the eight
dihedral hashes (rotations and mirrors) a query is matched with, so a mirrored or rotated
copy of a banked image still matches."""

from __future__ import annotations

from dataclasses import dataclass

import pdqhash

from covey.safety.images._decode import MAX_PIXELS, decode_for_hashing
from covey.safety.images._hash import MIN_QUALITY, PdqHash


@dataclass(frozen=True, slots=True)
class ImageHash:
    """One image's PDQ hash and PDQ's quality score (0-100; below 50 is unreliable)."""

    pdq: PdqHash
    quality: int

    @property
    def usable(self) -> bool:
        """Whether the hash is reliable enough to match on (PDQ's reference: quality ≥ 50)."""
        return self.quality >= MIN_QUALITY


@dataclass(frozen=True, slots=True)
class QueryHashes:
    """The eight dihedral hashes of one image (index 0 is the image as it is)."""

    hashes: tuple[PdqHash, ...]
    quality: int

    @property
    def original(self) -> ImageHash:
        return ImageHash(self.hashes[0], self.quality)

    @property
    def usable(self) -> bool:
        return self.quality >= MIN_QUALITY


def hash_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> ImageHash:
    """The PDQ hash and quality of the image in `data` (raises `ImageRejected`)."""
    bits, quality = pdqhash.compute(decode_for_hashing(data, max_pixels=max_pixels))
    return ImageHash(PdqHash.from_bits(bits), int(quality))


def query_hashes(data: bytes, *, max_pixels: int = MAX_PIXELS) -> QueryHashes:
    """The image's eight dihedral PDQ hashes, for matching (raises `ImageRejected`)."""
    all_bits, quality = pdqhash.compute_dihedral(decode_for_hashing(data, max_pixels=max_pixels))
    return QueryHashes(tuple(PdqHash.from_bits(bits) for bits in all_bits), int(quality))
