"""`covey detect`: run Covey's detectors over files, for investigators and tests.

Each kind of content has its own sub-command module (`_detect_images.py`, ...)."""

from __future__ import annotations

import typer

from covey.cli import app

detect_app = typer.Typer(name="detect", no_args_is_help=True,
                         help="Run detectors over files.\n\n"
                              "Example: covey detect images --hash-list known.txt a.jpg")
app.add_typer(detect_app, name="detect")

from covey.cli import _detect_images  # noqa: E402, F401  (registers `detect images`)
