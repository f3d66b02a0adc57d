"""`covey whoami`: the account as the server sees it — user, devices, age band and expiry —
and, with `--prove`, a fresh age proof from this device's wallet first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from covey.cli import app
from covey.cli._device import run_on_store, when
from covey.client import Client
from covey.protocol.wire import MeResponse


@app.command("whoami")
def whoami(
    store: Annotated[Path, typer.Option("--store", help="this device's encrypted store file")],
    prove: Annotated[bool, typer.Option(help="prove the age band again first")] = False,
) -> None:
    """Show this account's user id, devices, age band and when the band expires."""
    console = Console()

    async def action(client: Client) -> tuple[MeResponse, int]:
        if prove:
            with console.status("Proving the age band (zero-knowledge proof)…"):
                await client.prove_age()
        return await client.whoami(), len(client.age_credentials())

    (me, credentials), _ = run_on_store(store, action)
    table = Table(show_header=False, title=f"{me.user_id} (this device: {me.device_id})")
    table.add_row("devices", ", ".join(me.devices))
    colour = {"16+": "green", "under-16": "cyan"}.get(me.age.band, "yellow")
    table.add_row("age band", f"[bold {colour}]{me.age.band}[/]")
    table.add_row("band expires", when(me.age.expires_at_ms))
    table.add_row("vouched for by", me.age.issuer_id or "—")
    table.add_row("verified", when(me.age.verified_at_ms))
    table.add_row("credentials in wallet", str(credentials))
    console.print(table)
