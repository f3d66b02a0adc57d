"""`covey report`: report a received message (with up to ten preceding messages of its
conversation as franked evidence), optionally blocking its sender in the same action."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from covey.cli import app
from covey.cli._device import run_on_store
from covey.cli._messages import parse_message_ref
from covey.moderation import ReportCategory


@app.command("report")
def report(
    message_id: Annotated[str, typer.Argument(
        metavar="ID", help="the message's id as `covey history` lists it")],
    store: Annotated[Path, typer.Option("--store", help="this device's encrypted store")],
    category: Annotated[ReportCategory, typer.Option(help="why it is reported")],
    comment: Annotated[str | None, typer.Option(help="an optional comment")] = None,
    block: Annotated[bool, typer.Option("--block", help="also block the sender")] = False,
) -> None:
    """Report a message to the platform's moderators (the sender is not told).

    Example: covey history --store alice.db --with bob lists ids, then
    covey report ID --store alice.db --category harassment --block
    """
    target = parse_message_ref(message_id)
    receipt, _ = run_on_store(
        store, lambda client: client.report(target, category, comment, block=block))
    console = Console(highlight=False)
    state = "already filed" if receipt.duplicate else "filed"
    console.print(f"[green]report {receipt.report_id} {state}[/]: "
                  f"{receipt.messages_verified} of {receipt.messages_submitted} messages "
                  "verified" + (" · sender blocked" if receipt.blocked else ""))
    for item in receipt.items:
        console.print(f"  {escape(item.message_id)}  {item.status}")
