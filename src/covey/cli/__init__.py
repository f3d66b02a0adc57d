"""The `covey` command. Each sub-command lives in its own module and registers itself here."""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="covey",
    help="Covey: end-to-end encrypted messaging that keeps children safe.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _covey() -> None:
    """Keeps `covey COMMAND` a group even when only that command's module is loaded."""

# Modules that add commands to `app` when imported; each module is named after its command.
_COMMAND_MODULES = ("server", "demo", "chat", "evidence", "issuer", "whoami",
                    "report", "admin", "transparency", "audit", "guardian", "contacts",
                    "detect")


def _load_commands(argv: list[str]) -> None:
    """Import the module of the command being run (a server starts without importing the
    demo or the console's browser tooling), or every module for `covey --help`."""
    wanted = [argv[0]] if argv and argv[0] in _COMMAND_MODULES else _COMMAND_MODULES
    for name in wanted:
        importlib.import_module(f"covey.cli.{name}")


def main() -> None:
    _load_commands(sys.argv[1:])
    app()
