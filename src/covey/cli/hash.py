"""`covey hash images`: PDQ hashes of image files, for investigators and tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from covey.cli import app
from covey.cli._images_common import fail, read_images

hash_app = typer.Typer(name="hash", no_args_is_help=True,
                       help="Perceptual hashes of files.\n\nExample: covey hash images a.jpg")
app.add_typer(hash_app, name="hash")


@hash_app.command("images")
def images(
    paths: Annotated[list[Path], typer.Argument(help="image files (or directories)")],
    as_json: Annotated[bool, typer.Option(
        "--json", help='one JSON line per image: {"path", "pdq", "quality"}')] = False,
) -> None:
    """Print each image's PDQ hash and quality (0-100; under 50 is not matched on).

    Example: covey hash images photo.jpg ./more/ --json"""
    from covey.safety.images import hash_image

    failed: list[Path] = []
    for path, hashed in read_images(paths, hash_image, failed):
        if as_json:
            print(json.dumps({"path": str(path), "pdq": hashed.pdq.hex,
                              "quality": hashed.quality}), flush=True)
        else:
            print(f"{hashed.pdq.hex} {hashed.quality:3d} {path}", flush=True)
    if failed:
        fail(f"{len(failed)} file(s) could not be hashed")
