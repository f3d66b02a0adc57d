"""Storage: SQL tables, migrations, the async engines and the one repository."""

from covey.server.storage.engine import create_engine, is_sqlite, upgrade_to_head
from covey.server.storage.repository import Repository

__all__ = ["Repository", "create_engine", "is_sqlite", "upgrade_to_head"]
