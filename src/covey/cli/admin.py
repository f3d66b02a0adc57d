"""`covey admin`: moderator accounts for the console and the platform's attestation key.

Runs against the server's database and data dir (same settings as `covey server`)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from covey.cli import app
from covey.cli._settings import open_existing_database, settings_or_exit
from covey.errors import CoveyError
from covey.settings import Settings

admin_app = typer.Typer(name="admin", no_args_is_help=True,
                        help="Moderator accounts and the attestation key.")
app.add_typer(admin_app, name="admin")

T = TypeVar("T")
DatabaseOption = Annotated[str | None, typer.Option(
    help="sqlite+aiosqlite:///path or postgresql+asyncpg://... (default: settings)")]
DataDirOption = Annotated[Path | None, typer.Option(help="the server's data dir")]


def _settings(database_url: str | None, data_dir: Path | None, *,
              database: bool = True) -> Settings:
    """The server's settings; with `database`, its database must already exist (one line
    on standard error says which it is): admin commands never create one."""
    errors = Console(highlight=False, stderr=True, soft_wrap=True)
    settings = settings_or_exit(errors, database_url=database_url, data_dir=data_dir)
    if database:
        open_existing_database(errors, settings)
    return settings


async def with_store(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(ReportRepository)` on the server's database, then close it."""
    from covey.server.storage import Repository, create_engine, upgrade_to_head
    from covey.server.storage.reports_repo import ReportRepository

    engine = create_engine(settings.database_url)
    await upgrade_to_head(engine)
    repo = Repository(engine)
    repo.start()
    try:
        return await work(ReportRepository(repo))
    finally:
        await repo.close()


@admin_app.command("create-user")
def create_user(
    username: Annotated[str, typer.Argument(help="the console login name")],
    role: Annotated[str, typer.Option(help="moderator or admin")] = "moderator",
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create (or reset the password of) a console account; a reset ends its sessions.
    The password comes from $COVEY_ADMIN_PASSWORD or a prompt."""
    from covey.server.services.moderation import create_moderator

    console = Console(highlight=False)
    settings = _settings(database_url, data_dir)
    password = os.environ.get("COVEY_ADMIN_PASSWORD") or str(
        typer.prompt("password", hide_input=True, confirmation_prompt=True))

    async def work(store: Any) -> bool:
        return await create_moderator(store, username, password, role)

    try:
        created = asyncio.run(with_store(settings, work))
    except CoveyError as exc:
        console.print(f"[red]{escape(exc.message)}[/]")
        raise typer.Exit(2) from exc
    console.print(f"{'created' if created else 'updated'} {role} {escape(username)}")


def _set_disabled(username: str, disabled: bool, database_url: str | None,
                  data_dir: Path | None) -> None:
    from covey.server.services.moderation import set_moderator_disabled

    console = Console(highlight=False)
    settings = _settings(database_url, data_dir)

    async def work(store: Any) -> bool:
        return await set_moderator_disabled(store, username, disabled)

    if not asyncio.run(with_store(settings, work)):
        console.print(f"no console account named {username!r}")
        raise typer.Exit(2)
    console.print(f"disabled {username}: sessions ended, login refused" if disabled
                  else f"enabled {username}")


@admin_app.command("disable-user")
def disable_user(
    username: Annotated[str, typer.Argument(help="the console login name")],
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Disable a console account: its sessions end at once and login is refused."""
    _set_disabled(username, True, database_url, data_dir)


@admin_app.command("enable-user")
def enable_user(
    username: Annotated[str, typer.Argument(help="the console login name")],
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Let a disabled console account log in again."""
    _set_disabled(username, False, database_url, data_dir)


@admin_app.command("export-key")
def export_key(
    out: Annotated[Path, typer.Option("--out", help="where to write the PEM public key")],
    data_dir: DataDirOption = None,
) -> None:
    """Write the platform's Ed25519 attestation public key (for `covey evidence verify`)."""
    from covey.moderation import attestation_key_id, public_key_pem
    from covey.server.services.moderation import (
        attestation_key_path,
        load_or_create_attestation_key,
    )

    settings = _settings(None, data_dir, database=False)
    path = attestation_key_path(settings)
    if not path.is_file():  # never make a key the server does not sign with
        Console(highlight=False, stderr=True, soft_wrap=True).print(
            f"[red]no attestation key at {escape(str(path))}: run this where the server "
            f"runs, or pass --data-dir[/]")
        raise typer.Exit(2)
    key = load_or_create_attestation_key(path)
    out.write_bytes(public_key_pem(key))
    Console(highlight=False).print(
        f"wrote attestation public key {attestation_key_id(key.public_key())} to {out}")
