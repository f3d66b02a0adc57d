"""Helpers shared by the `covey demo` scenes: how a received message is shown, and a
read-only look at a server's SQLite database (what the operator could see)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from rich.console import Console

from covey.client import IncomingMessage

WAIT_S = 15.0


def received(console: Console, who: str, message: IncomingMessage) -> None:
    tag = "[green]✓ tag[/]" if message.evidence.tag is not None else "[red]✗ no tag[/]"
    console.print(f"  [bold]{who}[/] ← {message.sender_user}: "
                  f"[italic]{message.text or '(attachment)'}[/]  [green]✓ commitment[/] {tag}")


def server_rows(database: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one query on a server's SQLite database, opened read-only."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
