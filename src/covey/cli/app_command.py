"""`covey app`: the messaging app in the browser, served by this device's own client on
127.0.0.1 (keys and the encrypted store stay on this machine, as with `covey chat`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Annotated

import typer

from covey.cli import app

DEFAULT_STORE = Path.home() / ".covey" / "app.db"


@app.command("app")
def app_command(
    server: Annotated[str, typer.Option("--server", help="relay URL, e.g. http://127.0.0.1:8470")],
    store: Annotated[Path, typer.Option("--store", help="this device's encrypted store "
                                        "(made when you create an account in the page)")
                     ] = DEFAULT_STORE,
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="port on 127.0.0.1 (0: any free port)")] = 0,
    no_browser: Annotated[bool, typer.Option("--no-browser",
                                             help="print the address, do not open it")] = False,
) -> None:
    """Open Covey in your browser: chats, contacts, reports, age, groups and devices.

    Prints `Covey app: http://127.0.0.1:PORT/#token=...`; the address works once, in one
    browser. The store's passphrase is asked in the page (or $COVEY_PASSPHRASE).

    Example: covey app --server http://127.0.0.1:8470 --store alice.db
    """
    from covey.app import run_app

    if not server.startswith(("http://", "https://")):
        typer.echo(f"--server {server!r} is not a URL: use e.g. http://127.0.0.1:8470", err=True)
        raise typer.Exit(2)
    store = store.expanduser()
    store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_app(server, store, port=port, open_browser=not no_browser,
                                passphrase=os.environ.get("COVEY_PASSPHRASE")))
    except OSError as exc:
        typer.echo(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}; choose another --port",
                   err=True)
        raise typer.Exit(2) from exc
