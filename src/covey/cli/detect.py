"""`covey detect`: run Covey's detectors over files, offline. Each sub-command lives in its
own module (`_detect_*.py`) and registers itself on `detect_app`."""

from __future__ import annotations

import typer

from covey.cli import app

detect_app = typer.Typer(name="detect", no_args_is_help=True,
                         help="Run the detectors offline over files (no server needed).")
app.add_typer(detect_app, name="detect")

# Each module registers its command on `detect_app`.
from covey.cli import _detect_conversations, _detect_images  # noqa: E402,F401
