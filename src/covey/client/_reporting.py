"""Building a report from the local history: the reported message and up to ten
messages before it in the same conversation (both directions), as franked evidence.

A message is found by its `MessageKey` (conversation, sender user, message id), never by
its id alone: a sender may reuse another participant's message id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from covey.errors import InvalidInput
from covey.moderation import Report, ReportCategory
from covey.protocol.ids import MessageKey


def record_key(record: dict[str, Any]) -> MessageKey:
    """The key of a history record (sent or received)."""
    content = record["content"]
    return MessageKey(content["conversation_id"], record["context"]["sender_user"],
                      content["message_id"])


def resolve_message(history: Sequence[dict[str, Any]], message: MessageKey | str) -> MessageKey:
    """The key of the received message to report. A bare message id must name exactly
    one received message; a key must name a received one."""
    if isinstance(message, MessageKey):
        found = [r for r in history if record_key(r) == message]
    else:
        found = [r for r in history if r["content"]["message_id"] == message]
    if not found:
        raise InvalidInput(f"message {message} is not in this device's history",
                           code="reported_message_missing")
    received = [r for r in found if r.get("direction") != "out"]
    if not received:
        raise InvalidInput("you cannot report your own message", code="report_own_message")
    keys = {record_key(r) for r in received}
    if len(keys) > 1:
        raise InvalidInput(f"several received messages carry the id {message}: report it "
                           "by its key (IncomingMessage.key)",
                           code="reported_message_ambiguous")
    return keys.pop()


def build_report(history: Sequence[dict[str, Any]], reporter: str,
                 message: MessageKey | str, category: ReportCategory | str,
                 comment: str | None = None) -> Report:
    """`history` is the client's whole history, oldest first."""
    key = resolve_message(history, message)
    records = [r for r in history if r["content"]["conversation_id"] == key.conversation_id
               and r["content"].get("kind") != "room_key"]
    # Server time orders the conversation as the server accepted it; a message sent from
    # this device that was never accepted (time 0) is no evidence of anything.
    records = [r for r in records if int(r.get("server_ts_ms") or 0) > 0]
    records.sort(key=lambda r: int(r["server_ts_ms"]))
    return Report.from_history(reporter, key, ReportCategory(category), records,
                               comment=comment or "")
