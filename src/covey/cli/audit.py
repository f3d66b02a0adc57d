"""`covey audit visibility`: what the server stores, table by table and field by field, in a
form it can read for the configured policy mode, and, measured read-only on a live
database, how many bytes it can read per 1,000 messages for adults and for children."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from covey.cli import app
from covey.cli.admin import DatabaseOption
from covey.errors import CoveyError
from covey.safety.policy import PolicyMode, parse_mode
from covey.safety.visibility import (
    CATALOG,
    DATA_DIR_FILES,
    DETECTION,
    IMAGE_HANDLING,
    Audience,
    Visibility,
    catalog_json,
    per_thousand,
    retention_settings,
)
from covey.settings import Settings, load_settings

audit_app = typer.Typer(name="audit", no_args_is_help=True,
                        help="Audits of what the server stores and can read.")
app.add_typer(audit_app, name="audit")

ModeOption = Annotated[str | None, typer.Option(
    help="policy mode to describe: safeguarded, on-device or e2ee-only (default: settings)")]

_MODE_SUMMARY = {
    PolicyMode.SAFEGUARDED: "conversations with an under-16 or unverified participant carry "
    "a safety copy the server can read; 16+ ↔ 16+ is end-to-end encrypted",
    PolicyMode.ON_DEVICE: "every conversation is end-to-end encrypted; children's own "
    "devices scan; nothing leaves a device unless reported",
    PolicyMode.E2EE_ONLY: "every conversation is end-to-end encrypted; franked reporting "
    "and contact rules only",
}


@audit_app.command("visibility")
def visibility(
    database_url: DatabaseOption = None,
    mode: ModeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    catalog_only: Annotated[bool, typer.Option(
        "--catalog-only", help="only the catalog; do not open the database")] = False,
) -> None:
    """What the server can read: every table and field (ciphertext, metadata,
    plaintext-readable, ...) with its retention for the mode, then bytes readable per
    1,000 messages for adults and for children, measured read-only on the database. No
    message content or safety copy is read."""
    from covey.server.audit import measure_visibility

    console = Console(highlight=False)
    try:
        settings = load_settings(**({} if database_url is None
                                    else {"database_url": database_url}))
        chosen = parse_mode(mode or settings.safety_mode)
        report = None if catalog_only else asyncio.run(
            measure_visibility(settings.database_url, chosen))
    except (CoveyError, ValidationError, SQLAlchemyError, OSError) as exc:
        message = exc.message if isinstance(exc, CoveyError) else str(exc).splitlines()[0]
        console.print(f"[red]{message}[/]")
        raise typer.Exit(2) from exc
    values = _retention_values(settings)
    if as_json:
        typer.echo(json.dumps({
            "mode": chosen.value,
            "detection": DETECTION[chosen],
            "classes": {v.value: v.meaning for v in Visibility},
            "retention_settings": values,
            "catalog": catalog_json(chosen, values),
            "data_dir_files": [
                {"path": path, "class": cls.value, "note": note,
                 "retention": retention.describe(values)}
                for path, (cls, note, retention) in DATA_DIR_FILES.items()],
            "images": IMAGE_HANDLING[chosen].to_json(),
            "measurement": None if report is None else report.to_json(),
        }, indent=2, sort_keys=True))
        return
    console.print(f"[bold]mode {chosen.value}[/]: {_MODE_SUMMARY[chosen]}")
    console.print(f"[bold]detection[/]: {DETECTION[chosen]}")
    console.print(render_catalog(chosen, values))
    images = IMAGE_HANDLING[chosen]
    console.print(f"[bold]Images ({chosen.value})[/]: the server {images.server}. The "
                  f"child's client: {images.device}. Protects: {images.protects}. Leaks: "
                  f"{images.leaks}.")
    console.print(_legend())
    if report is not None:
        console.print(render_measurement(report))


def _retention_values(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in sorted(retention_settings())}


# --- rendering (also used by the demo) ---------------------------------------------------


def render_catalog(mode: PolicyMode, settings: Mapping[str, Any] | None = None) -> Table:
    """Every table with its retention, and its fields grouped by what the server can read
    of them; tables that hold nothing in `mode` are dimmed."""
    grid = Table(box=None, show_header=False, padding=(0, 1), expand=False,
                 title=f"What the server stores ({mode.value})", title_justify="left")
    grid.add_column(no_wrap=True)
    grid.add_column()
    for name, entry in CATALOG.items():
        holds = mode in entry.modes
        style = None if holds else "dim"
        note = "" if holds else " [holds nothing in this mode]"
        grid.add_row(Text(name, style="bold"), Text(
            f"{entry.purpose}; {entry.retention.describe(settings)}{note}", style="italic"),
            style=style)
        for cls in Visibility:
            fields = []
            for column in entry.of(cls):
                retention = entry.field_retention(column)
                fields.append(column if retention == entry.retention else
                              f"{column} — {retention.describe(settings)}")
            if fields:
                grid.add_row(Text(f"  {cls.value}", style=_CLASS_STYLE.get(cls, "")),
                             ", ".join(fields), style=style)
    grid.add_row(Text("<data_dir>", style="bold"), Text("files beside the database",
                                                         style="italic"))
    for path, (cls, note, retention) in DATA_DIR_FILES.items():
        grid.add_row(Text(f"  {cls.value}", style=_CLASS_STYLE.get(cls, "")),
                     f"{path}: {note}; {retention.describe(settings)}")
    return grid


_CLASS_STYLE = {Visibility.PLAINTEXT_READABLE: "bold red", Visibility.CIPHERTEXT: "green"}


def _legend() -> Table:
    legend = Table("class", "meaning", box=None, show_header=False)
    for v in Visibility:
        legend.add_row(v.value, v.meaning)
    return legend


def _n(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


_ROWS = (
    ("messages", "messages stored"),
    ("readable", "readable bytes / 1,000 messages"),
    ("plaintext", "  of which message content"),
    ("metadata", "  of which metadata"),
    ("mailbox_entries", "copies waiting for a device"),
    ("ciphertext", "ciphertext held (unreadable) / 1,000"),
    ("commitment", "commitments (reveal nothing) / 1,000"),
)
_AUDIENCE_LABEL = {Audience.ADULTS: "adults (all 16+)",
                   Audience.CHILDREN: "children (under-16 or unverified)"}


def _cell(tally: Any, key: str) -> str:
    if key in ("messages", "mailbox_entries"):
        return _n(getattr(tally, key))
    return _n(per_thousand(getattr(tally, key), tally.messages))


def render_measurement(report: Any) -> RenderableType:
    """The live measurement of one `covey.server.audit.VisibilityReport`."""
    table = Table("", *[_AUDIENCE_LABEL[a] for a in report.audiences],
                  title=f"Measured on {report.database} (mode {report.mode.value})")
    for key, label in _ROWS:
        table.add_row(label, *[_cell(t, key) for t in report.audiences.values()])
    content = Table("field", "rows", "plaintext bytes", "readable by",
                    title="Content the server can read, all of it")
    for name, item in report.readable_content.items():
        content.add_row(name, _n(item.rows), _n(item.bytes), item.readable_by)
    parts: list[RenderableType] = [table, content]
    unmatched = sum(t.safety_copies for t in report.unmatched_copies.values())
    if unmatched:
        parts.append(Text(f"{unmatched} safety copies outlive their message rows (not in "
                          "the per-1,000 figures)."))
    for finding in report.findings:
        parts.append(Text(f"• {finding}", style="yellow"))
    return Group(*parts)


def render_side_by_side(reports: Mapping[PolicyMode | str, Any]) -> Table:
    """One table, one column per mode: what the server can read of adults' and of
    children's conversations (`reports` maps a mode to its `VisibilityReport`)."""
    modes = [PolicyMode(m) for m in reports]
    table = Table("", *[m.value for m in modes],
                  title="What the server can read, per 1,000 messages, by mode")
    for audience in Audience:
        table.add_section()
        table.add_row(Text(_AUDIENCE_LABEL[audience], style="bold"), *[""] * len(modes))
        for key, label in _ROWS:
            table.add_row(label, *[_cell(reports[m].audiences[audience], key)
                                   for m in modes])
    return table
