"""Known-image detection: PDQ hashes (`pdqhash`), hash lists and a FAISS matcher.

Pure: bytes and hashes in, hashes and matches out. The server keeps banks in its
database (server/storage/banks.py) and a matcher in sync with them
(server/services/bank_index.py). docs/detection.md describes the design."""

from covey.safety.images._decode import ImageRejected, decode_for_hashing
from covey.safety.images._hash import MATCH_DISTANCE, MIN_QUALITY, InvalidHash, PdqHash
from covey.safety.images.hashing import ImageHash, QueryHashes, hash_image, query_hashes
from covey.safety.images.matcher import Match, PdqMatcher, as_codes

__all__ = [
    "MATCH_DISTANCE",
    "MIN_QUALITY",
    "ImageHash",
    "ImageRejected",
    "InvalidHash",
    "Match",
    "PdqHash",
    "PdqMatcher",
    "QueryHashes",
    "as_codes",
    "decode_for_hashing",
    "hash_image",
    "query_hashes",
]
