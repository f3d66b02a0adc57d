"""Moved to `tests.support.fake_server`; re-exported here so tests that import this old path keep
working. New code imports `tests.support.fake_server`."""

from tests.support.fake_server import (
    PASSPHRASE,
    TEST_SCRYPT_N,
    FakeServer,
    Refused,
)

__all__ = [
    "PASSPHRASE", "TEST_SCRYPT_N", "FakeServer", "Refused",
]
