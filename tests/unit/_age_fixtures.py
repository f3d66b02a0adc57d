"""Moved to `tests.support.age_fixtures`; re-exported here so tests that import this old path keep
working. New code imports `tests.support.age_fixtures`."""

from tests.support.age_fixtures import (
    DeclaredBirthDate,
    FakeClock,
    RawIssuer,
    born_years_ago,
    covey_issuer,
    holder,
    raw_issuer,
    registry_for,
    today,
    verifier_for,
)

__all__ = [
    "DeclaredBirthDate", "FakeClock", "RawIssuer", "born_years_ago", "covey_issuer",
    "holder", "raw_issuer", "registry_for", "today", "verifier_for",
]
