"""Moved to `tests.support.age`; re-exported here so tests that import this old path keep
working. New code imports `tests.support.age`."""

from tests.support.age import (
    FAST_SCRYPT,
    PASSPHRASE,
    IssuerService,
    ShiftedClock,
    covey,
    get_credential,
    server_env,
    today,
    wait_for,
)

__all__ = [
    "FAST_SCRYPT", "PASSPHRASE", "IssuerService", "ShiftedClock", "covey",
    "get_credential", "server_env", "today", "wait_for",
]
