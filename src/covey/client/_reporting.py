"""Building a report from the local history: the reported message and up to ten
messages before it in the same conversation (both directions), as franked evidence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from covey.errors import InvalidInput
from covey.moderation import Report, ReportCategory


def build_report(history: Sequence[dict[str, Any]], reporter: str, message_id: str,
                 category: ReportCategory | str, comment: str | None = None) -> Report:
    """`history` is the client's whole history, oldest first."""
    reported = next((r for r in history if r["content"]["message_id"] == message_id), None)
    if reported is None:
        raise InvalidInput(f"message {message_id} is not in this device's history",
                           code="reported_message_missing")
    if reported.get("direction") == "out":
        raise InvalidInput("you cannot report your own message", code="report_own_message")
    conversation = reported["content"]["conversation_id"]
    records = [r for r in history if r["content"]["conversation_id"] == conversation
               and r["content"].get("kind") != "room_key"]
    # Server time orders the conversation as the server accepted it; a message sent from
    # this device that was never accepted (time 0) is no evidence of anything.
    records = [r for r in records if int(r.get("server_ts_ms") or 0) > 0]
    records.sort(key=lambda r: int(r["server_ts_ms"]))
    return Report.from_history(reporter, message_id, ReportCategory(category), records,
                               comment=comment or "")
