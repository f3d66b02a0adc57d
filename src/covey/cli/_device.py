"""What the device commands (`covey guardian`, `contacts`, `report`, `whoami`, `chat`)
share: the store passphrase, running one action on an opened store, and times."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from covey.client import Client, Offline, StoreError
from covey.errors import CoveyError

T = TypeVar("T")
StoreOption = Annotated[Path, typer.Option("--store", help="this device's encrypted store")]


def passphrase() -> str:
    """$COVEY_PASSPHRASE, or a prompt that does not echo."""
    return os.environ.get("COVEY_PASSPHRASE") or str(
        typer.prompt("store passphrase", hide_input=True))


def new_passphrase() -> str:
    """$COVEY_PASSPHRASE, or a prompt asked twice (a typo would lock the store for good)."""
    return os.environ.get("COVEY_PASSPHRASE") or str(
        typer.prompt("new store passphrase", hide_input=True, confirmation_prompt=True))


def when(ms: int | None) -> str:
    return "—" if ms is None else datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def run_on_store(store: Path, action: Callable[[Client], Awaitable[T]]) -> tuple[T, str]:
    """Open the store without connecting, run `action(client)`, close; on a Covey error
    print its code and message and exit 1. Returns the result and the user id."""
    console = Console(highlight=False)
    refuse_missing_store(console, store)
    secret = passphrase()

    async def run() -> tuple[T, str]:
        client = await Client.open(store, secret, connect=False)
        async with client:
            return await action(client), client.user_id

    try:
        return asyncio.run(run())
    except CoveyError as exc:
        console.print(f"[red]{escape(exc.code)}: {escape(exc.message)}[/]", soft_wrap=True)
        hint = _NEXT_STEP.get(exc.code)
        if hint is not None:
            console.print(escape(hint.format(store=store)), soft_wrap=True)
        raise typer.Exit(exit_code(exc)) from exc


# What to do next, for errors a newcomer meets on their first day.
_NEXT_STEP = {
    "no_age_credential": "get one first: covey age request --store {store} --issuer URL "
                         "--evidence KEY=VALUE, then covey age status --store {store}",
}


def refuse_missing_store(console: Console, store: Path) -> None:
    """Before asking for a passphrase: a --store that is no file gets one line, exit 2."""
    if not store.is_file():
        what = "a folder, not a store file" if store.is_dir() else "no store there"
        console.print(f"[red]{escape(str(store))}: {what}: covey register --server URL "
                      f"--store {escape(str(store))} HANDLE makes one[/]", soft_wrap=True)
        raise typer.Exit(2)


def exit_code(exc: CoveyError) -> int:
    """2 for bad input (a wrong store, passphrase or argument; a 4xx answer), 1 for
    failures that are not the user's (an unreachable or failing server)."""
    if isinstance(exc, Offline):
        return 1
    return 2 if isinstance(exc, StoreError) or 400 <= exc.status < 500 else 1
