"""What `covey bank`, `covey hash` and `covey detect images` share: settings from the
server's options, a bank store on a migrated database, image paths, and one-line errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from covey.cli._settings import open_existing_database, settings_or_exit
from covey.settings import Settings

T = TypeVar("T")
DatabaseOption = Annotated[str | None, typer.Option(
    "--database-url", help="sqlite+aiosqlite:///path or postgresql+asyncpg://... "
    "(default: the server's covey.toml / COVEY_DATABASE_URL)")]
DataDirOption = Annotated[Path | None, typer.Option(
    "--data-dir", help="the server's data dir (default: settings)")]

# No markup: messages carry file names and list lines; no wrapping: one error, one line.
err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def fail(message: str) -> NoReturn:
    """One clear line on stderr and exit code 2."""
    err.print(f"error: {message}")
    raise typer.Exit(2)


def server_settings(database_url: str | None, data_dir: Path | None) -> Settings:
    """The server's settings with the flags given; a wrong value is one line, exit 2."""
    return settings_or_exit(err, database_url=database_url, data_dir=data_dir)


def run_on_banks(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(BankStorage)` on the server's database (which must exist: a bank in a
    database no server reads would match nothing), then close it; database and input
    errors become one line and exit 2."""
    from sqlalchemy.exc import SQLAlchemyError

    from covey.errors import CoveyError
    from covey.server.storage import Repository, create_engine, upgrade_to_head
    from covey.server.storage.banks import BankStorage

    open_existing_database(err, settings)

    async def run() -> T:
        engine = create_engine(settings.database_url)
        repo = Repository(engine)
        try:
            await upgrade_to_head(engine)
            repo.start()
            return await work(BankStorage(repo))
        finally:
            await repo.close()

    try:
        return asyncio.run(run())
    except CoveyError as exc:
        fail(exc.message)
    except (SQLAlchemyError, OSError) as exc:
        fail(f"database {settings.database_url.split('@')[-1]}: "
             f"{str(exc).splitlines()[0][:200]}")


def read_images(paths: list[Path], hasher: Callable[[bytes], T], failures: list[Path], *,
                prefix: str = "") -> Iterator[tuple[Path, T]]:
    """`hasher` applied to each image file of `paths`; a file that cannot be read or
    decoded is one line on stderr (`prefix` + path and reason) and goes to `failures`."""
    from covey.errors import CoveyError

    for path in image_files(paths):
        try:
            hashed = hasher(path.read_bytes())
        except (OSError, CoveyError) as exc:
            reason = exc.message if isinstance(exc, CoveyError) else (exc.strerror or str(exc))
            err.print(f"{prefix}{path}: {reason}")
            failures.append(path)
            continue
        yield path, hashed


def image_files(paths: list[Path]) -> Iterator[Path]:
    """Each file named, and the files under each directory named, in sorted order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path
