"""Moved to `tests.support.console`; re-exported here so tests that import this old path keep
working. New code imports `tests.support.console`."""

from tests.support.console import (
    PASSWORD,
    console_login,
    console_suspend,
    create_console_user,
    csrf_of,
)

__all__ = [
    "PASSWORD", "console_login", "console_suspend", "create_console_user", "csrf_of",
]
