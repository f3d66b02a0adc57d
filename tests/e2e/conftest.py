"""The e2e tests use the integration tests' real-server fixtures."""

from tests.support.server import (  # noqa: F401  (fixtures, found by name)
    _database_postgres,
    _database_sqlite,
    covey_server,
    shared_covey_servers,
)
