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
                    "detect", "bank", "hash", "history", "register", "app", "age")


# Commands whose module has another name (`covey.cli.app` is the Typer app itself).
_MODULE_OF = {"app": "app_command"}


def _load_commands(argv: list[str]) -> None:
    """Import the module of the command being run (a server starts without importing the
    demo or the console's browser tooling), or every module for `covey --help`."""
    wanted = [argv[0]] if argv and argv[0] in _COMMAND_MODULES else _COMMAND_MODULES
    for name in wanted:
        importlib.import_module(f"covey.cli.{_MODULE_OF.get(name, name)}")
    from covey.cli._examples import add_examples

    add_examples(app)


def main() -> None:
    """Run the command; usage errors and unexpected failures end in one line, never a
    traceback (exit 2 for bad input; COVEY_DEBUG=1 shows the traceback of a failure)."""
    import os

    _load_commands(sys.argv[1:])
    try:
        code = app(standalone_mode=False)
    except KeyboardInterrupt:
        typer.echo("covey: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        # Click's exceptions by name: typer may carry its own copy of click.
        kinds = {kind.__name__ for kind in type(exc).__mro__}
        formatted = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        message = " ".join(str(formatted).split())
        if "UsageError" in kinds:
            ctx = getattr(exc, "ctx", None)
            where = getattr(ctx, "command_path", None) or "covey"
            typer.echo(f"{where}: {message} (see {where} --help)", err=True)
            sys.exit(2)
        if "ClickException" in kinds:
            typer.echo(f"covey: {message}", err=True)
            sys.exit(int(getattr(exc, "exit_code", 1)))
        if "Abort" in kinds:
            typer.echo("covey: stopped: no input (a passphrase can come from "
                       "COVEY_PASSPHRASE)", err=True)
            sys.exit(2)
        if os.environ.get("COVEY_DEBUG") == "1":
            raise
        from covey.errors import CoveyError

        if isinstance(exc, CoveyError):
            typer.echo(f"covey: {exc.code}: {exc.message}", err=True)
            sys.exit(2 if 400 <= exc.status < 500 else 1)
        typer.echo(f"covey: unexpected {type(exc).__name__}: {exc} (a bug: please report "
                   "it; COVEY_DEBUG=1 shows where)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
