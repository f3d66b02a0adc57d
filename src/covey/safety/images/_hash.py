"""`PdqHash`: one 256-bit PDQ hash, its 64-hex form and the Hamming distance between two.

The hex form is python-threatexchange's (`PdqSignal`): bit 0 of PDQ's output is the most
significant bit of the first hex digit, so hashes move between Covey and HMA unchanged."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from covey.errors import InvalidInput

PDQ_BITS = 256
PDQ_BYTES = PDQ_BITS // 8
# PDQ's reference and python-threatexchange (`PDQ_CONFIDENT_MATCH_THRESHOLD`, `PdqSignal`).
MATCH_DISTANCE = 31
MIN_QUALITY = 50

_HEX = re.compile(r"[0-9a-fA-F]{64}")


class InvalidHash(InvalidInput):
    code = "invalid_pdq_hash"


@dataclass(frozen=True, slots=True)
class PdqHash:
    """256 bits as 32 bytes, in the hex order threatexchange and HMA use."""

    value: bytes

    def __post_init__(self) -> None:
        if len(self.value) != PDQ_BYTES:
            raise InvalidHash(f"a PDQ hash is {PDQ_BYTES} bytes, not {len(self.value)}")

    @classmethod
    def from_hex(cls, text: str) -> PdqHash:
        text = text.strip()
        if not _HEX.fullmatch(text):
            raise InvalidHash(f"not a 64-hex PDQ hash: {text[:80]!r}")
        return cls(bytes.fromhex(text))

    @classmethod
    def from_bits(cls, bits: npt.ArrayLike) -> PdqHash:
        """From pdqhash's array of 256 zeros and ones."""
        array = np.asarray(bits, dtype=np.uint8)
        if array.shape != (PDQ_BITS,):
            raise InvalidHash(f"a PDQ hash has {PDQ_BITS} bits")
        return cls(np.packbits(array).tobytes())

    @property
    def hex(self) -> str:
        return self.value.hex()

    def distance(self, other: PdqHash) -> int:
        """Hamming distance: the number of differing bits."""
        return (int.from_bytes(self.value, "big") ^ int.from_bytes(other.value, "big")).bit_count()

    def __str__(self) -> str:
        return self.hex


def is_pdq_hex(text: str) -> bool:
    return _HEX.fullmatch(text) is not None
