"""The `covey` command. Each sub-command lives in its own module and registers itself here."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer.core import TyperOption

_type_shown = TyperOption.display_type_rich


def _flag_without_type(option: TyperOption, ctx: Any) -> str | None:
    # typer's help shows flags such as --json and --help as "<bool>": a flag takes no value.
    return None if option.is_flag else _type_shown(option, ctx)


setattr(TyperOption, "display_type_rich", _flag_without_type)  # noqa: B010

app = typer.Typer(
    name="covey",
    help="Covey: end-to-end encrypted messaging that keeps children safe.\n\n"
         "Example: covey demo, then covey server (README.md: \"Try it yourself\")",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import version

        typer.echo(f"covey {version('covey')}")
        raise typer.Exit()


@app.callback()
def _covey(
    _version: bool = typer.Option(False, "--version", callback=_print_version,
                                  is_eager=True, help="Print the version and exit."),
) -> None:
    """Keeps `covey COMMAND` a group even when only that command's module is loaded."""

# Modules that add commands to `app` when imported; each module is named after its command.
_COMMAND_MODULES = ("server", "demo", "chat", "evidence", "issuer", "whoami",
                    "report", "admin", "transparency", "audit", "guardian", "contacts",
                    "detect", "bank", "hash", "history", "register")


def _load_commands(argv: list[str]) -> None:
    """Import the module of the command being run (a server starts without importing the
    demo or the console's browser tooling), or every module for `covey --help`."""
    wanted = [argv[0]] if argv and argv[0] in _COMMAND_MODULES else _COMMAND_MODULES
    for name in wanted:
        importlib.import_module(f"covey.cli.{name}")
    from covey.cli._examples import add_examples

    add_examples(app)


def main() -> None:
    _load_commands(sys.argv[1:])
    app()
