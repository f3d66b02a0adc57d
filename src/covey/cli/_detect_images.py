"""`covey detect images`: match image files against a hash list or a server bank.

Each image is hashed with its eight dihedral variants, so a mirrored or rotated copy of
a listed image matches; an image of PDQ quality under 50 never matches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from covey.cli._images_common import (
    DatabaseOption,
    DataDirOption,
    fail,
    read_images,
    run_on_banks,
    server_settings,
)
from covey.cli.detect import detect_app
from covey.safety.images.formats import HashListFormat


def _list_matcher(hash_list: Path, fmt: HashListFormat, max_distance: int) -> Any:
    """A matcher over a hash-list file and a lookup from entry id to (hash, meta)."""
    from covey.errors import CoveyError
    from covey.safety.images import PdqMatcher, as_codes
    from covey.safety.images.sources import FileSource

    if not hash_list.is_file():
        fail(f"no such hash list: {hash_list}")
    try:
        records = [r for d in FileSource(hash_list, fmt).fetch() for r in d.updates.values()
                   if r is not None]
    except CoveyError as exc:
        fail(exc.message)
    matcher = PdqMatcher(max_distance)
    matcher.add(list(range(len(records))), as_codes(r.pdq for r in records))
    return matcher, {i: (r.pdq.hex, dict(r.meta)) for i, r in enumerate(records)}


@detect_app.command("images")
def images(
    paths: Annotated[list[Path], typer.Argument(help="image files (or directories)")],
    hash_list: Annotated[Path | None, typer.Option(
        "--hash-list", help="a hash-list file to match against")] = None,
    bank: Annotated[str | None, typer.Option(
        "--bank", help="a bank in the server's database to match against")] = None,
    fmt: Annotated[HashListFormat, typer.Option(
        "--format", help="the hash list's format: text, te or hma")] = HashListFormat.TEXT,
    max_distance: Annotated[int | None, typer.Option(
        "--max-distance", help="match within this Hamming distance (default: settings, 31)",
        min=0, max=255)] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help='one JSON line per image: {"path", "pdq", "quality", "match"}')]
        = False,
    database_url: DatabaseOption = None, data_dir: DataDirOption = None,
) -> None:
    """Match images against known hashes; a mirrored or rotated copy matches too.

    Example: covey detect images --hash-list known.txt ./inbox/ --json"""
    from covey.safety.images import query_hashes

    if (hash_list is None) == (bank is None):
        fail("give exactly one of --hash-list FILE or --bank NAME")
    settings = server_settings(database_url, data_dir)
    distance = settings.pdq_match_distance if max_distance is None else max_distance
    failed: list[Path] = []
    queries: list[tuple[Path, Any]] = list(read_images(paths, query_hashes, failed))

    results: list[dict[str, Any] | None]
    if hash_list is not None:
        matcher, entries = _list_matcher(hash_list, fmt, distance)
        results = []
        for _, query in queries:
            found = matcher.search(query.hashes) if query.usable else []
            if found:
                pdq, meta = entries[found[0].entry_id]
                results.append({"distance": found[0].distance, "hash": pdq, "meta": meta})
            else:
                results.append(None)
    else:
        results = _match_bank(str(bank), queries, settings, distance)

    for (path, query), match in zip(queries, results, strict=True):
        original = query.original
        if as_json:
            print(json.dumps({"path": str(path), "pdq": original.pdq.hex,
                              "quality": original.quality, "match": match}), flush=True)
        else:
            verdict = (f"MATCH distance {match['distance']} {match['hash']}" if match
                       else "no match")
            print(f"{path}: {verdict}", flush=True)
    if failed:
        fail(f"{len(failed)} file(s) could not be hashed")


def _match_bank(bank: str, queries: list[tuple[Path, Any]], settings: Any,
                distance: int) -> list[dict[str, Any] | None]:
    from covey.server.services.bank_index import BankIndex

    async def work(banks: Any) -> list[dict[str, Any] | None]:
        if bank not in {b.name for b in await banks.list_banks()}:
            fail(f"no bank named {bank!r}")
        index = BankIndex(banks, max_distance=distance,
                          multihash_min=settings.pdq_multihash_min)
        await index.load()
        found: list[dict[str, Any] | None] = []
        for _, query in queries:
            match = await index.match(query.hashes, bank=bank) if query.usable else None
            found.append(None if match is None else {
                "distance": match.distance, "hash": match.entry.pdq.hex(),
                "meta": match.entry.meta})
        return found

    return run_on_banks(settings, work)
