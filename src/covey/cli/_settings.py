"""Settings for the commands that run against the server's database (`server`, `admin`,
`audit`, ...): flags over `COVEY_*` over covey.toml, and one clear line instead of a
pydantic traceback when a value is wrong."""

from __future__ import annotations

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
