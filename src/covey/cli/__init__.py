"""The `covey` command. Each sub-command lives in its own module and registers itself here."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="covey",
    help="Covey: end-to-end encrypted messaging that keeps children safe.",
    no_args_is_help=True,
    add_completion=False,
)

# Modules that add commands to `app` when imported.
_COMMAND_MODULES = ("server", "demo", "chat", "evidence", "issuer", "whoami",
                    "report", "admin", "transparency", "audit", "guardian")


def _load_commands() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(f"covey.cli.{name}")


def main() -> None:
    _load_commands()
    app()
