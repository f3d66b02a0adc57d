"""`covey server`: run the relay (uvicorn) with settings from covey.toml, COVEY_* and flags."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from covey.cli import app
from covey.cli._settings import database_label, database_problem, settings_or_exit
from covey.settings import Settings


def _default(field: str) -> str:
    """The built-in default, shown in --help (env vars and covey.toml still apply)."""
    return f"{Settings.model_fields[field].default} or COVEY_{field.upper()}"


def _registry_line(settings: Settings) -> str:
    if settings.trust_registry is None:
        return ("age issuers: none (no trust registry): nobody can prove an age band; set "
                "--trust-registry")
    return escape(f"age issuers from {settings.trust_registry}")


@app.command("server")
def server(
    host: Annotated[str | None, typer.Option(
        help="address to listen on", show_default=_default("host"))] = None,
    port: Annotated[int | None, typer.Option(
        help="port to listen on", show_default=_default("port"))] = None,
    database_url: Annotated[str | None, typer.Option(
        help="sqlite+aiosqlite:///path or postgresql+asyncpg://...",
        show_default=_default("database_url"))] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="blobs and the server key", show_default=_default("data_dir"))] = None,
    trust_registry: Annotated[str | None, typer.Option(
        help="trusted age-credential issuers: a signed registry file or https:// URL "
             "(`covey issuer publish`); none: nobody can prove an age band",
        show_default="none or COVEY_TRUST_REGISTRY")] = None,
    trust_registry_key: Annotated[str | None, typer.Option(
        help="the operator's Ed25519 public key the registry is signed with (`covey "
             "issuer operator-key` prints it)",
        show_default="none or COVEY_TRUST_REGISTRY_KEY")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Run the Covey relay server.

    Example: covey server --database-url sqlite+aiosqlite:///covey.db --port 8470
    --trust-registry trust-registry.json --trust-registry-key BASE64KEY
    """
    import os
    import sys

    import uvicorn
    from rich.console import Console

    from covey.server import create_app

    console = Console(highlight=False, stderr=True, soft_wrap=True)
    settings = settings_or_exit(console, host=host, port=port, database_url=database_url,
                                data_dir=data_dir, trust_registry=trust_registry,
                                trust_registry_key=trust_registry_key)
    problem = asyncio.run(database_problem(settings.database_url))
    if problem is not None:
        console.print(f"[red]{escape(problem)}[/]")
        raise typer.Exit(2)
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"Covey relay on [bold]{base}[/] · mode {settings.safety_mode} · "
                  f"{escape(database_label(settings.database_url))} · data "
                  f"{escape(str(settings.data_dir))}\n"
                  f"  moderation console: {base}/console/  ·  health: {base}/healthz\n"
                  f"  {_registry_line(settings)}")
    # The SQLite writer thread hands the GIL back and forth with the event loop around
    # every fsync; the default 5 ms switch interval would stall each commit that long.
    sys.setswitchinterval(0.0005)
    # Everything the relay creates (database files, keys, blobs, packages) is private.
    from covey.server.files import PRIVATE_UMASK

    os.umask(PRIVATE_UMASK)
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=log_level,
        # Frames carry whole envelopes; the app answers anything larger with an error frame.
        ws_max_size=2 * settings.max_envelope_bytes + 4096,
        # Ciphertext does not compress; deflate would only cost CPU on every frame.
        ws_per_message_deflate=False,
        ws=os.environ.get("COVEY_UVICORN_WS", "websockets-sansio"), http="httptools",
        loop="uvloop",
    )

