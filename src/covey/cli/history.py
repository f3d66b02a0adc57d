"""`covey history`: one conversation as this device stored it, oldest first, each
received message with the id that `covey report` takes."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from covey.cli import app
from covey.cli._device import StoreOption, run_on_store
from covey.cli._messages import attachment_label, clock, message_from_record, report_ids
from covey.client import Client


@app.command("history")
def history(
    with_: Annotated[str, typer.Option(
        "--with", metavar="HANDLE", help="the user (or group id) the conversation is with")],
    store: StoreOption,
    last: Annotated[int, typer.Option("--last", min=1, help="show only the last N messages")
                    ] = 50,
) -> None:
    """List a conversation from this device's store, with the ids `covey report` takes.

    Example: covey history --store alice.db --with bob, then
    covey report ID --store alice.db --category harassment
    """
    async def read(client: Client) -> list[dict[str, Any]]:
        return client.core.history(client.core.conversation_for(with_))

    records, _ = run_on_store(store, read)
    console = Console(highlight=False)
    records = [r for r in records if r["content"].get("kind") != "room_key"]
    if not records:
        console.print(f"no messages with {escape(with_)} on this device")
        return
    ids = report_ids(records)
    for record in records[-last:]:
        message = message_from_record(record)
        who = "you" if record.get("direction") == "out" else message.sender_user
        line = f"[dim]{clock(message.server_ts_ms)}[/] [bold cyan]{escape(who)}[/]: "
        line += escape(message.text)
        for ref in message.attachments:
            line += " " + attachment_label(ref)
        shown = ids.get(message.key)
        if shown is not None:
            line += f"  [dim]id {escape(shown)}[/]"
        console.print(line)

