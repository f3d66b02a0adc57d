"""The transparency report: counts of reports by month, category, action taken, policy
mode and reporter age band. Pure: rows in, counts out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DIMENSIONS = ("month", "category", "action", "policy_mode", "reporter_band")


@dataclass(frozen=True)
class TransparencyRow:
    """What the report counts about one report: never its content or its people."""

    created_ms: int
    category: str
    action: str
    policy_mode: str
    reporter_band: str
    reported_verified: bool = True


def month_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m")


def transparency_counts(rows: Iterable[TransparencyRow]) -> dict[str, Any]:
    """`{"total", "verified", "by_month", "by_category", "by_action", "by_policy_mode",
    "by_reporter_band"}`, each `by_*` a name → count mapping in sorted order."""
    counters: dict[str, Counter[str]] = {d: Counter() for d in DIMENSIONS}
    total = verified = 0
    for row in rows:
        total += 1
        verified += int(row.reported_verified)
        counters["month"][month_of(row.created_ms)] += 1
        counters["category"][row.category] += 1
        counters["action"][row.action] += 1
        counters["policy_mode"][row.policy_mode] += 1
        counters["reporter_band"][row.reporter_band] += 1
    result: dict[str, Any] = {"total": total, "reported_message_verified": verified}
    for dimension, counter in counters.items():
        result[f"by_{dimension}"] = dict(sorted(counter.items()))
    return result


def month_range_ms(first: str, last: str) -> tuple[int, int]:
    """[start of month `first`, start of the month after `last`) in ms; YYYY-MM each."""
    start = datetime.strptime(first, "%Y-%m").replace(tzinfo=UTC)
    end = datetime.strptime(last, "%Y-%m").replace(tzinfo=UTC)
    after = end.replace(year=end.year + end.month // 12, month=end.month % 12 + 1)
    return int(start.timestamp() * 1000), int(after.timestamp() * 1000)


def suppress_small_counts(counts: dict[str, Any], threshold: int) -> dict[str, Any]:
    """The public form of `transparency_counts`: every count from 1 to `threshold` - 1 is
    replaced by None (shown as "hidden"), so a small count cannot point at the few
    children behind it. Within a dimension whose cells add up to the shown total, one
    hidden cell could be worked out by subtraction, so the next smallest cell is hidden
    too; the verified count is hidden when the unverified rest is small."""
    def small(n: int) -> bool:
        return 0 < n < threshold

    total = int(counts["total"])
    if small(total):
        return {"total": None, "reported_message_verified": None,
                **{k: {name: None for name in v} for k, v in counts.items()
                   if k.startswith("by_")}}
    verified = int(counts["reported_message_verified"])
    result: dict[str, Any] = {
        "total": total,
        "reported_message_verified": None if small(verified) or small(total - verified)
        else verified}
    for key, cells in counts.items():
        if not key.startswith("by_"):
            continue
        shown: dict[str, int | None] = {name: None if small(n) else n
                                        for name, n in cells.items()}
        hidden = [name for name, n in shown.items() if n is None]
        if len(hidden) == 1:
            rest = sorted((n, name) for name, n in shown.items() if n)
            if rest:
                shown[rest[0][1]] = None
        result[key] = shown
    return result
