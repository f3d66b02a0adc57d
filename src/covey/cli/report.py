"""`covey report`: report a received message (with up to ten preceding messages of its
conversation as franked evidence), optionally blocking its sender in the same action."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from covey.cli import app
from covey.cli._device import passphrase
from covey.client import Client
from covey.errors import CoveyError
from covey.moderation import ReportCategory


async def _report(store: Path, message_id: str, category: ReportCategory,
                  comment: str | None, block: bool, console: Console) -> None:
    client = await Client.open(store, passphrase(), connect=False)
    async with client:
        receipt = await client.report(message_id, category, comment, block=block)
    state = "already filed" if receipt.duplicate else "filed"
    console.print(f"[green]report {receipt.report_id} {state}[/]: "
                  f"{receipt.messages_verified} of {receipt.messages_submitted} messages "
                  "verified" + (" · sender blocked" if receipt.blocked else ""))
    for item in receipt.items:
        console.print(f"  {escape(item.message_id)}  {item.status}")


@app.command("report")
def report(
    message_id: Annotated[str, typer.Argument(help="the id of the received message")],
    store: Annotated[Path, typer.Option("--store", help="this device's encrypted store")],
    category: Annotated[ReportCategory, typer.Option(help="why it is reported")],
    comment: Annotated[str | None, typer.Option(help="an optional comment")] = None,
    block: Annotated[bool, typer.Option("--block", help="also block the sender")] = False,
) -> None:
    """Report a message to the platform's moderators (the sender is not told)."""
    console = Console(highlight=False)
    try:
        asyncio.run(_report(store, message_id, category, comment, block, console))
    except CoveyError as exc:
        console.print(f"[red]{escape(exc.code)}: {escape(exc.message)}[/]")
        raise typer.Exit(1) from exc
