"""How the command line prints messages and names them: every piece of user text is
escaped (rich would otherwise read `[bold]` or `[attachment …]` as markup and eat it), and
a message is named by the id `covey report` accepts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.markup import escape

from covey.client import FrankingEvidence, IncomingMessage, MessageKey
from covey.protocol.content import AttachmentRef


def clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


def attachment_label(ref: AttachmentRef, detail: str = "") -> str:
    """`[attachment NAME, SIZE B, TYPE]` as markup that prints its brackets literally."""
    extra = f", {detail}" if detail else ""
    return (f"[magenta]\\[attachment {escape(ref.name or ref.blob_id)}, {ref.size} B, "
            f"{escape(ref.mime)}{escape(extra)}][/]")


def message_from_record(record: dict[str, Any]) -> IncomingMessage:
    """A stored history record (sent or received) as the message it carries."""
    return IncomingMessage.from_evidence(FrankingEvidence.from_record(record),
                                         tuple(record.get("blob_ids", ())))


def report_ids(records: Sequence[dict[str, Any]]) -> dict[MessageKey, str]:
    """The id to show for each received message: its message id, or its whole key
    (conversation|sender|id) where another received message carries the same id."""
    received = [message_from_record(r).key for r in records if r.get("direction") != "out"]
    counts: dict[str, int] = {}
    for key in received:
        counts[key.message_id] = counts.get(key.message_id, 0) + 1
    return {key: key.message_id if counts[key.message_id] == 1 else str(key)
            for key in received}


def parse_message_ref(text: str) -> MessageKey | str:
    """What `covey report` takes: a message id, or a key `CONVERSATION|SENDER|ID`."""
    parts = text.split("|")
    if len(parts) == 3 and all(parts):
        return MessageKey(*parts)
    return text
