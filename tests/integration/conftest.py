"""Fixtures that run a real `covey server` process on SQLite or PostgreSQL (defined in
`tests.support.server`): `covey_server` gives each test a fresh server, or its module's
shared one when the test is marked `shared_server`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import (  # noqa: F401  (fixtures, found by name; names other tests import)
    BACKENDS,
    POSTGRES_URL,
    CoveyServer,
    _database_postgres,
    _database_sqlite,
    covey_server,
    shared_covey_servers,
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server: starts a real `covey server` process")
    config.addinivalue_line("markers", "opaque_envelopes: sends envelopes of random bytes, "
                            "so the server runs in e2ee-only mode (no safety copies)")
    config.addinivalue_line("markers", "shared_server: runs on its module's running server "
                            "(unique handles, no restarts, no absolute row counts)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything that uses the fixture starts a server: `-m server` selects exactly those.
    for item in items:
        if "covey_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)
