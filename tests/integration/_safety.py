"""Moved to `tests.support.safety`; re-exported here so tests that import this old path keep
working. New code imports `tests.support.safety`."""

from tests.support.safety import (
    BandIssuer,
    People,
    band_issuer,
    people,
    trust_band_issuer,
)

__all__ = [
    "BandIssuer", "People", "band_issuer", "people", "trust_band_issuer",
]
