"""`covey server`: run the relay (uvicorn) with settings from covey.toml, COVEY_* and flags."""

from __future__ import annotations

import asyncio
import contextlib
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


_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _startup_problem(settings: Settings, log_level: str) -> str | None:
    """What would stop the server right after starting, said in one line first."""
    import socket

    if not 0 <= settings.port <= 65535:
        return f"port {settings.port} is out of range: give --port 1-65535 (or COVEY_PORT)"
    if log_level.lower() not in _LOG_LEVELS:
        return f"--log-level {log_level!r}: use one of {', '.join(_LOG_LEVELS)}"
    try:
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((settings.host, settings.port))
    except OSError as exc:
        return (f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}; give "
                "another --port or --host")
    return None


def _make_data_dir(settings: Settings) -> tuple[list[Path], str | None]:
    """Create the data directory now (so a bad one is one line, not a failed start):
    the folders made, to remove again if the server does not start after all."""
    target = Path(settings.data_dir).absolute()
    made = [p for p in [target, *target.parents] if not p.exists()]
    try:
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return made, (f"cannot use the data directory {settings.data_dir}: {exc.strerror}; "
                      "give --data-dir a folder this user can create or write (or "
                      "COVEY_DATA_DIR)")
    return made, None


def _unmake(made: list[Path]) -> None:
    for folder in made:  # deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()


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
    nats_url: Annotated[str | None, typer.Option(
        help="NATS JetStream server that makes this process a node of a cluster (needs a "
        "PostgreSQL --database-url shared by every node)",
        show_default=_default("nats_url"))] = None,
    log_level: Annotated[str, typer.Option(
        help="log level (JSON lines on standard error; info adds an access line per "
        "request)", envvar="COVEY_LOG_LEVEL")] = "warning",
) -> None:
    """Run the Covey relay server.

    Example: covey server --database-url sqlite+aiosqlite:///covey.db --port 8470
    --trust-registry trust-registry.json --trust-registry-key BASE64KEY

    A cluster node: covey server --database-url postgresql+asyncpg://db/covey
    --nats-url nats://127.0.0.1:4222 --data-dir /srv/covey-shared --port 8471
    """
    import os
    import sys

    import uvicorn
    from rich.console import Console

    from covey.server import create_app

    console = Console(highlight=False, stderr=True, soft_wrap=True)
    settings = settings_or_exit(console, host=host, port=port, database_url=database_url,
                                data_dir=data_dir, trust_registry=trust_registry,
                                trust_registry_key=trust_registry_key, nats_url=nats_url)
    made: list[Path] = []
    problem = _startup_problem(settings, log_level)
    if problem is None:
        made, problem = _make_data_dir(settings)
    problem = problem or asyncio.run(database_problem(settings.database_url))
    if problem is None:
        from covey.server.cluster import preflight_problem

        problem = asyncio.run(preflight_problem(settings))
    if problem is None and settings.nats_url is not None:
        problem = asyncio.run(_nats_problem(settings.nats_url))
    if problem is not None:
        _unmake(made)
        console.print(f"[red]{escape(problem)}[/]")
        raise typer.Exit(2)
    from covey.server.cluster import new_node_id
    from covey.server.logs import configure_logging

    node_id = new_node_id()
    configure_logging(log_level, node_id)
    base = f"http://{settings.host}:{settings.port}"
    role = ("cluster node, NATS " + _nats_label(settings.nats_url)
            if settings.nats_url else "single process")
    console.print(f"Covey relay on [bold]{base}[/] · node {node_id} ({escape(role)}) · mode "
                  f"{settings.safety_mode} · {escape(database_label(settings.database_url))}"
                  f" · data {escape(str(settings.data_dir))}\n"
                  f"  moderation console: {base}/console/  ·  health: {base}/healthz  ·  "
                  f"ready: {base}/readyz  ·  metrics: {base}/metrics\n"
                  f"  {_registry_line(settings)}")
    # The SQLite writer thread hands the GIL back and forth with the event loop around
    # every fsync; the default 5 ms switch interval would stall each commit that long.
    sys.setswitchinterval(0.0005)
    # Everything the relay creates (database files, keys, blobs, packages) is private.
    from covey.server.files import PRIVATE_UMASK

    os.umask(PRIVATE_UMASK)
    uvicorn.run(
        create_app(settings, node_id=node_id), host=settings.host, port=settings.port,
        log_level=log_level,
        # Frames carry whole envelopes; the app answers anything larger with an error frame.
        ws_max_size=2 * settings.max_envelope_bytes + 4096,
        # Ciphertext does not compress; deflate would only cost CPU on every frame.
        ws_per_message_deflate=False,
        ws=os.environ.get("COVEY_UVICORN_WS", "websockets-sansio"), http="httptools",
        loop="uvloop", log_config=None,
    )


def _nats_label(url: str | None) -> str:
    """The NATS server a URL names, without credentials."""
    from urllib.parse import urlsplit

    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 4222}"


async def _nats_problem(url: str) -> str | None:
    """Why NATS JetStream at `url` cannot be used, in one line; None when it can."""
    import nats

    label = _nats_label(url)
    async def quiet(_exc: Exception) -> None:
        return None

    try:
        # nats-py retries a refused first connection on its own: bound it.
        nc = await asyncio.wait_for(nats.connect(
            url, connect_timeout=3, max_reconnect_attempts=0, allow_reconnect=False,
            error_cb=quiet), 5)
    except Exception as exc:
        return (f"cannot reach NATS at {label} ({type(exc).__name__}): check --nats-url "
                f"(COVEY_NATS_URL) and that nats-server runs with JetStream (-js)")
    try:
        await nc.jetstream().account_info()
    except Exception:
        return (f"NATS at {label} has no JetStream: start nats-server with -js")
    finally:
        await nc.close()
    return None

