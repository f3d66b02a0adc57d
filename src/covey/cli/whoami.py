"""`covey whoami`: the account as the server sees it — user, devices, age band and expiry —
and, with `--prove`, a fresh age proof from this device's wallet first."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from covey.cli import app
from covey.cli._device import passphrase, when
from covey.errors import CoveyError


@app.command("whoami")
def whoami(
    store: Annotated[Path, typer.Option("--store", help="this device's encrypted store file")],
    prove: Annotated[bool, typer.Option(help="prove the age band again first")] = False,
) -> None:
    """Show this account's user id, devices, age band and when the band expires."""
    from covey.client import Client

    console = Console()
    secret = passphrase()

    async def run() -> None:
        client = await Client.open(store, secret, connect=False)
        try:
            if prove:
                with console.status("Proving the age band (zero-knowledge proof)…"):
                    await client.prove_age()
            me = await client.whoami()
            credentials = len(client.age_credentials())
        finally:
            await client.close()
        table = Table(show_header=False, title=f"{me.user_id} (this device: {me.device_id})")
        table.add_row("devices", ", ".join(me.devices))
        colour = {"16+": "green", "under-16": "cyan"}.get(me.age.band, "yellow")
        table.add_row("age band", f"[bold {colour}]{me.age.band}[/]")
        table.add_row("band expires", when(me.age.expires_at_ms))
        table.add_row("vouched for by", me.age.issuer_id or "—")
        table.add_row("verified", when(me.age.verified_at_ms))
        table.add_row("credentials in wallet", str(credentials))
        console.print(table)

    try:
        asyncio.run(run())
    except CoveyError as exc:
        console.print(f"[red]{exc.code}: {exc.message}[/]")
        raise typer.Exit(1) from exc
