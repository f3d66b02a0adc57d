"""Settings for the commands that run against the server's database (`server`, `admin`,
`audit`, ...): flags over `COVEY_*` over covey.toml, and one clear line instead of a
pydantic traceback when a value is wrong."""

from __future__ import annotations

import contextlib
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from covey.settings import Settings, load_settings


def describe_validation_error(exc: ValidationError) -> str:
    """`safety_mode (COVEY_SAFETY_MODE or covey.toml): unknown ...` for the first wrong
    value."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "settings"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{field} (COVEY_{field.upper()} or covey.toml): {message}"


def settings_or_exit(console: Console, **given: Any) -> Settings:
    """Settings with the flags that were given (None means not given); exit 2 with one
    line naming the setting when a value is invalid."""
    try:
        return load_settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        console.print(f"[red]{escape(describe_validation_error(exc))}[/]")
        raise typer.Exit(2) from exc


def database_label(url: str) -> str:
    """The database a URL names, without its password: for start-up lines and logs."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a URL at all: show nothing of it
        return "(invalid database URL)"
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite {parsed.database}"
    return f"PostgreSQL {parsed.render_as_string(hide_password=True)}"


def open_existing_database(console: Console, settings: Settings) -> None:
    """For commands that work on the server's database but must never create one (`covey
    admin`, `covey transparency`): exit 2 with one line when it is not there or cannot be
    opened; otherwise say on standard error which database is used."""
    import asyncio
    from pathlib import Path

    from sqlalchemy.engine import make_url

    url = settings.database_url
    problem = None
    with contextlib.suppress(Exception):  # a malformed URL: database_problem names it
        parsed = make_url(url)
        if (parsed.get_backend_name() == "sqlite" and parsed.database
                and not Path(parsed.database).expanduser().is_file()):
            problem = (f"no server database at {parsed.database}: run this where the "
                       f"server runs, or pass --database-url (or set COVEY_DATABASE_URL)")
    problem = problem or asyncio.run(database_problem(url))
    if problem is not None:
        console.print(f"[red]{escape(problem)}[/]", markup=True)  # markup even where off
        raise typer.Exit(2)
    console.print(f"database: {escape(database_label(url))}", markup=True)


async def database_problem(url: str) -> str | None:
    """Why `url` cannot be used (a bad URL, an unreachable server, a missing database), in
    one line; None when a connection works."""
    from sqlalchemy import text

    from covey.errors import CoveyError
    from covey.server.storage import create_engine

    label = database_label(url)
    try:
        engine = create_engine(url)
    except CoveyError as exc:
        return f"--database-url / COVEY_DATABASE_URL: {exc.message}"
    except Exception as exc:  # SQLAlchemy's ArgumentError for a malformed URL
        return f"--database-url / COVEY_DATABASE_URL is not a database URL ({exc})"
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return (f"cannot open the database ({label}): {reason}. Check --database-url; "
                f"for PostgreSQL, create the database first (createdb NAME)")
    finally:
        await engine.dispose()
    return None
