"""`covey register`: create an account and this device's encrypted store, before any
conversation (so `covey chat`, `contacts` and `whoami` can open it)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from covey.cli import app
from covey.cli._device import new_passphrase
from covey.client import Client
from covey.errors import CoveyError
from covey.protocol.ids import USER_ID_PATTERN


@app.command("register")
def register(
    handle: Annotated[str, typer.Argument(help="the account's handle (3-32 of a-z 0-9 _ . -)")],
    server: Annotated[str, typer.Option("--server", help="relay URL, e.g. http://127.0.0.1:8470")],
    store: Annotated[Path, typer.Option("--store", help="this device's new encrypted store")],
) -> None:
    """Create an account with this device as its first, and its encrypted store.

    The passphrase is $COVEY_PASSPHRASE or asked twice.

    Example: covey register --server http://127.0.0.1:8470 --store alice.db alice,
    then covey chat --store alice.db --to bob
    """
    console = Console(highlight=False)
    if re.fullmatch(USER_ID_PATTERN, handle) is None:
        console.print(f"[red]invalid handle \"{escape(handle)}\": use 3-32 of a-z 0-9 _ . - , "
                      "starting with a letter or digit[/]")
        raise typer.Exit(2)
    if store.exists():
        console.print(f"[red]{escape(str(store))} already exists: choose a new --store path "
                      "(or open this one with covey chat --store)[/]")
        raise typer.Exit(2)
    passphrase = new_passphrase()

    async def run() -> str:
        async with await Client.register(server, handle, store, passphrase) as client:
            return client.device_id

    try:
        device_id = asyncio.run(run())
    except CoveyError as exc:
        console.print(f"[red]could not register {escape(handle)} ({escape(exc.code)}): "
                      f"{escape(exc.message)}[/]")
        raise typer.Exit(2 if 400 <= exc.status < 500 else 1) from exc
    console.print(f"[green]registered {escape(handle)}[/] (device {escape(device_id)}) on "
                  f"{escape(server)}; store {escape(str(store))}\n"
                  f"next: covey contacts find HANDLE --store {escape(str(store))}, or "
                  f"covey chat --store {escape(str(store))} --to HANDLE")
