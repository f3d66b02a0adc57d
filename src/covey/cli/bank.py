"""`covey bank`: the server's known-image hash banks (docs/detection.md#hash-banks).

Runs against the server's database (same settings as `covey server`); a change is
picked up by every running server within `hash_bank_poll_interval_s`, without a restart."""

from __future__ import annotations

import io
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from covey.cli import app
from covey.cli._images_common import (
    DatabaseOption,
    DataDirOption,
    err,
    fail,
    read_images,
    run_on_banks,
    server_settings,
)
from covey.safety.images.formats import HashListFormat

bank_app = typer.Typer(name="bank", no_args_is_help=True, help=(
    "Known-image hash banks in the server's database.\n\n"
    "Example: covey bank create known && covey bank import known list.txt"))
app.add_typer(bank_app, name="bank")

NameArg = Annotated[str, typer.Argument(help="the bank's name (letters, digits, _ . -)")]
FormatOption = Annotated[HashListFormat, typer.Option(
    "--format", help="text (one 64-hex hash per line), te (ThreatExchange CSV) or hma")]
_CHUNK = 5000
out = Console(highlight=False)


def _now_ms() -> int:
    return int(time.time() * 1000)


@bank_app.command("create")
def create(name: NameArg, database_url: DatabaseOption = None,
           data_dir: DataDirOption = None) -> None:
    """Create an empty bank.

    Example: covey bank create known-images"""

    async def work(banks: Any) -> None:
        await banks.create_bank(name, _now_ms())

    run_on_banks(server_settings(database_url, data_dir), work)
    out.print(f"created bank {name}")


@bank_app.command("list")
def list_banks(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per bank")] = False,
    database_url: DatabaseOption = None, data_dir: DataDirOption = None,
) -> None:
    """List the banks and how many hashes each holds.

    Example: covey bank list --json"""

    async def work(banks: Any) -> list[Any]:
        return list(await banks.list_banks())

    for bank in run_on_banks(server_settings(database_url, data_dir), work):
        created = datetime.fromtimestamp(bank.created_ms / 1000, UTC).isoformat(
            timespec="seconds")
        if as_json:
            print(json.dumps({"name": bank.name, "entries": bank.entries, "created": created}))
        else:
            out.print(f"{bank.name}\t{bank.entries} hashes\tcreated {created}")


@bank_app.command("remove")
def remove(name: NameArg, database_url: DatabaseOption = None,
           data_dir: DataDirOption = None) -> None:
    """Delete a bank and every hash in it.

    Example: covey bank remove old-list"""

    async def work(banks: Any) -> int:
        return int(await banks.remove_bank(name))

    gone = run_on_banks(server_settings(database_url, data_dir), work)
    out.print(f"removed bank {name} ({gone} hashes)")


@bank_app.command("import")
def import_list(
    name: NameArg,
    file: Annotated[Path, typer.Argument(help="the hash list ('-' for standard input)")],
    fmt: FormatOption = HashListFormat.TEXT,
    database_url: DatabaseOption = None, data_dir: DataDirOption = None,
) -> None:
    """Add the hashes of a hash-list file to a bank (hashes already in it are skipped).

    Example: covey bank import known hashes.te --format te"""
    from covey.errors import CoveyError
    from covey.safety.images.sources import FileSource
    from covey.server.storage.banks import NewEntry

    try:
        if str(file) == "-":
            from covey.safety.images.formats import parse

            records = list(parse(io.TextIOWrapper(sys.stdin.buffer, "utf-8-sig"), fmt))
        else:
            if not file.is_file():
                fail(f"no such file: {file}")
            records = [r for delta in FileSource(file, fmt).fetch() for r in
                       delta.updates.values() if r is not None]
    except CoveyError as exc:
        fail(exc.message)
    source = "import:stdin" if str(file) == "-" else f"import:{file.name}"
    entries = [NewEntry(r.pdq.value, r.meta, source) for r in records]

    async def work(banks: Any) -> int:
        added = 0
        with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
                      console=err, transient=True, disable=len(entries) < 2 * _CHUNK) as bar:
            task = bar.add_task("import", total=len(entries))
            await banks.add_entries(name, [], _now_ms())  # a missing bank fails first
            for start in range(0, len(entries), _CHUNK):
                chunk = entries[start:start + _CHUNK]
                added += await banks.add_entries(name, chunk, _now_ms())
                bar.advance(task, len(chunk))
        return added

    added = run_on_banks(server_settings(database_url, data_dir), work)
    out.print(f"imported {added} new hashes into {name} "
              f"({len(entries) - added} already there) from {file}")


@bank_app.command("export")
def export_list(
    name: NameArg,
    fmt: FormatOption = HashListFormat.TEXT,
    output: Annotated[Path | None, typer.Option(
        "--out", help="write here instead of standard output")] = None,
    database_url: DatabaseOption = None, data_dir: DataDirOption = None,
) -> None:
    """Write a bank's hashes as a hash list.

    Example: covey bank export known --format hma --out known.hma.csv"""
    from covey.safety.images import PdqHash
    from covey.safety.images.formats import HashRecord, write

    async def work(banks: Any) -> list[HashRecord]:
        return [HashRecord(PdqHash(e.pdq), e.meta, e.added_ms)
                async for e in banks.export(name)]

    records = run_on_banks(server_settings(database_url, data_dir), work)
    if output is None:
        write(sys.stdout, records, fmt)
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as handle:
            count = write(handle, records, fmt)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    err.print(f"exported {count} hashes from {name} to {output}")


@bank_app.command("add-image")
def add_image(
    name: NameArg,
    images: Annotated[list[Path], typer.Argument(help="image files (or directories)")],
    database_url: DatabaseOption = None, data_dir: DataDirOption = None,
) -> None:
    """Hash images with PDQ and add them to a bank (an operator's own list). Images of
    PDQ quality under 50 are refused: they cannot be matched reliably.

    Example: covey bank add-image known ./images/"""
    from covey.safety.images import hash_image
    from covey.server.storage.banks import NewEntry

    entries: list[NewEntry] = []
    unreadable: list[Path] = []
    refused = 0
    for path, hashed in read_images(images, hash_image, unreadable, prefix="skipped "):
        if not hashed.usable:
            err.print(f"skipped {path}: PDQ quality {hashed.quality} is under 50")
            refused += 1
            continue
        entries.append(NewEntry(hashed.pdq.value, {"text": path.name}, f"image:{path.name}"))

    async def work(banks: Any) -> int:
        return int(await banks.add_entries(name, entries, _now_ms()))

    added = run_on_banks(server_settings(database_url, data_dir), work)
    out.print(f"added {added} image hashes to {name}")
    if refused or unreadable:
        fail(f"{refused + len(unreadable)} image(s) not added")
