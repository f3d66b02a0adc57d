"""Helpers shared by the `covey demo` scenes: the demo's console (the same layout in a
terminal of 80 or 120 columns and in a file), how a received message is shown, the
glossary of terms explained once each, and a read-only look at a server's SQLite database
(what the operator could see)."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from covey.client import IncomingMessage

WAIT_S = 15.0
# Redirected to a file (no terminal to ask), the demo is laid out for this many columns.
FILE_WIDTH = 100

# Each term the demo uses, in plain words; `explain` prints one the first time it is used.
GLOSSARY = {
    "franked": "every message carries a proof of what was sent (a commitment and the "
               "server's tag), so its recipient can report it and the platform can check "
               "the report without reading anything else",
    "commitment": "a fingerprint (HMAC) of the message that only a key hidden inside the "
                  "encrypted message opens: the sender cannot later claim other words",
    "tag": "the server's own stamp (HMAC under its secret key) on the commitment, sender, "
           "recipient and time: proof the message passed through the server then",
    "epoch": "the group's membership version: it goes up whenever someone is added or "
             "removed, and each epoch gets a fresh key",
    "WAL": "SQLite's write-ahead log: a file beside the database where recent writes wait "
           "before they are folded into it",
    "predicate": "a yes-or-no statement about a hidden value (here: born on or before a "
                 "certain date); the proof shows it holds without showing the date",
    "nonce": "a random number used once: a proof made for one request cannot be replayed "
             "for another",
}


def demo_console() -> Console:
    """A console that fits its terminal (or COLUMNS), and FILE_WIDTH when redirected."""
    interactive = sys.stdout.isatty()
    width = None if interactive or os.environ.get("COLUMNS") else FILE_WIDTH
    return Console(width=width, highlight=False, emoji=False)


class Glossary:
    """Remembers which terms were explained in this run."""

    def __init__(self) -> None:
        self._explained: set[str] = set()

    def explain(self, console: Console, *terms: str) -> None:
        for term in terms:
            if term in self._explained:
                continue
            self._explained.add(term)
            line = Text("  ▸ ", style="cyan")
            line.append(term, style="bold cyan")
            line.append(f": {GLOSSARY[term]}", style="dim")
            console.print(line)


def received(console: Console, who: str, message: IncomingMessage) -> None:
    """`who ← sender: text` and the recipient's checks; the text wraps in its own column,
    so the check marks never break across lines."""
    tag = Text("✓ tag", style="green") if message.evidence.tag is not None else Text(
        "✗ no tag", style="red")
    line = Table.grid(padding=(0, 1))
    line.add_column(no_wrap=True)
    line.add_column(overflow="fold")
    line.add_column(no_wrap=True)
    marks = Text("✓ commitment ", style="green") + tag
    line.add_row(Text.assemble("  ", (who, "bold"), f" ← {message.sender_user}:"),
                 Text(message.text or "(attachment)", style="italic"), marks)
    console.print(line)


def server_rows(database: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one query on a server's SQLite database, opened read-only."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
