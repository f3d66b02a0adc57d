"""`covey --version`, and help pages a person can read: no "<bool>" placeholder for flags, no
option name broken across lines, an example on every page (issue 14, item 16)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import typer
from typer.testing import CliRunner

from covey.cli import _COMMAND_MODULES, _load_commands, app

runner = CliRunner()


def _command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    # typer vendors its own click: a group is whatever has sub-commands.
    for name, sub in getattr(command, "commands", {}).items():
        paths.extend(_command_paths(sub, (*prefix, name)))
    return paths


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"covey {version('covey')}"


def test_no_help_page_shows_a_type_for_a_flag() -> None:
    _load_commands([])
    root = typer.main.get_command(app)
    paths = _command_paths(root)
    assert len(paths) > len(_COMMAND_MODULES)
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, path


def test_every_help_page_has_an_example_of_its_own_command() -> None:
    _load_commands([])
    root = typer.main.get_command(app)
    for path in _command_paths(root):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        flat = " ".join(result.output.replace("│", " ").split())
        assert "Example" in flat, path
        example = flat[flat.index("Example"):]
        assert " ".join(("covey", *path)) in example, (path, example[:200])


def _command_at(root: Any, path: tuple[str, ...]) -> Any:
    command = root
    for name in path:
        command = command.commands[name]
    return command


def test_no_help_page_breaks_an_option_name_across_lines() -> None:
    """In an 80-column terminal every option's name is printed whole on one line (a
    mid-word wrap like "--database-" / "url" cannot be copied or searched for)."""
    _load_commands([])
    root = typer.main.get_command(app)
    for path in _command_paths(root):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        lines = result.output.splitlines()
        for param in _command_at(root, path).params:
            for name in (*param.opts, *param.secondary_opts):
                if name.startswith("--"):
                    assert any(name in line for line in lines), (path, name, result.output)
