"""`covey transparency`: counts of reports by month, category, action, policy mode and
reporter age band, and of known-image matches, read from the server's database; `--json`
for the export."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from covey.cli import app
from covey.cli.admin import DatabaseOption, _settings, with_store

_DIMENSIONS = (("by_month", "month"), ("by_category", "category"), ("by_action", "action"),
               ("by_policy_mode", "policy mode"), ("by_reporter_band", "reporter age band"))


@app.command("transparency")
def transparency(
    database_url: DatabaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    out: Annotated[Path | None, typer.Option(help="also write the JSON here")] = None,
) -> None:
    """The transparency report: what was reported and what was done about it."""
    from covey.server.services.moderation import transparency_from_store

    settings = _settings(database_url, None)
    counts: dict[str, Any] = asyncio.run(with_store(settings, transparency_from_store))
    text = json.dumps(counts, indent=2, sort_keys=True)
    if out is not None:
        out.write_text(text + "\n")
    if as_json:
        typer.echo(text)
        return
    console = Console(highlight=False)
    console.print(f"[bold]{counts['total']}[/] reports; the reported message verified in "
                  f"{counts['reported_message_verified']}.")
    for key, title in _DIMENSIONS:
        table = Table(title, "reports", title=f"by {title}")
        for name, n in counts[key].items():
            table.add_row(name, str(n))
        console.print(table)
    images = counts["image_matches"]
    console.print(f"[bold]{images['total']}[/] known-image matches ({images['withheld']} "
                  f"withheld); by origin: "
                  + (", ".join(f"{k} {v}" for k, v in images["by_origin"].items()) or "none"))
