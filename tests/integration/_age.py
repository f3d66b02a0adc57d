"""Moved to `tests.support.age`; re-exported here so tests that import this old path keep
working. New code imports `tests.support.age`."""

from tests.support.age import (
    FAST_SCRYPT,
    OPERATOR,
    PASSPHRASE,
    IssuerService,
    ShiftedClock,
    covey,
    get_credential,
    operator_key_file,
    server_env,
    today,
    wait_for,
    write_registry,
)

__all__ = [
    "FAST_SCRYPT",
    "OPERATOR",
    "PASSPHRASE",
    "IssuerService",
    "ShiftedClock",
    "covey",
    "get_credential",
    "operator_key_file",
    "server_env",
    "today",
    "wait_for",
    "write_registry",
]
