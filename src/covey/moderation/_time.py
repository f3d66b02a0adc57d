"""Server times (ms since the epoch) as ISO 8601 UTC, the one format reports use."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
