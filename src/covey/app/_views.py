"""What the app's pages show, read from the client's encrypted store: the conversation
list (last message, unread count, protection) and a conversation's messages. Pure
functions over the SDK, no HTTP."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from covey.client import Client, FrankingEvidence, IncomingMessage
from covey.protocol.content import AttachmentRef
from covey.protocol.ids import MessageKey, dm_participants, is_group_id

READ_KIND = "app_read"  # per conversation: the newest server time the user has seen
NOTICE_KIND = "app_notice"  # safety and device notices, kept with the conversation
ACCOUNT_NOTICES = "*"  # notices about the account, not one conversation (shown on Chats)
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
PAGE = 50

CATEGORY_WORDS = {
    "grooming_or_enticement": "Grooming or trying to meet a child",
    "sextortion": "Threats to share private images (sextortion)",
    "child_sexual_exploitation_imagery": "Sexual images of a child",
    "harassment": "Bullying or harassment",
    "spam": "Spam or scam",
    "other": "Something else",
}
BAND_WORDS = {"16+": "16 or over", "under-16": "under 16", "unverified": "unverified"}


def clock(ms: int) -> str:
    if ms <= 0:
        return ""
    moment = datetime.fromtimestamp(ms / 1000)
    if moment.date() == datetime.now().date():
        return moment.strftime("%H:%M")
    return moment.strftime("%d %b %H:%M")


def size_words(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def title_of(client: Client, conversation_id: str) -> str:
    """The other person's handle, or the group's name."""
    pair = dm_participants(conversation_id)
    if pair is not None:
        others = [u for u in pair if u != client.user_id]
        return others[0] if others else client.user_id
    group = client.core.group(conversation_id)
    return group.name if group is not None else "Group"


def peer_of(client: Client, conversation_id: str) -> str | None:
    pair = dm_participants(conversation_id)
    if pair is None:
        return None
    others = [u for u in pair if u != client.user_id]
    return others[0] if others else None


def _records(client: Client, conversation_id: str | None = None) -> list[dict[str, Any]]:
    return [r for r in client.core.history(conversation_id)
            if r["content"].get("kind") != "room_key"]


def message_of(record: dict[str, Any]) -> IncomingMessage:
    return IncomingMessage.from_evidence(FrankingEvidence.from_record(record))


def read_mark(client: Client, conversation_id: str) -> int:
    record = client.core.store.get(READ_KIND, conversation_id)
    return 0 if record is None else int(record["ms"])


def mark_read(client: Client, conversation_id: str) -> None:
    newest = max((int(r.get("server_ts_ms") or 0) for r in _records(client, conversation_id)),
                 default=0)
    if newest > read_mark(client, conversation_id):
        client.core.store.put(READ_KIND, conversation_id, {"ms": newest})


def add_notice(client: Client, conversation_id: str, text: str, *, kind: str,
               about: str | None = None) -> None:
    """Keep a notice in the store (so scrollback shows it too) and return nothing."""
    now = int(time.time() * 1000)
    key = f"{conversation_id}|{now:015d}|{time.perf_counter_ns()}"
    client.core.store.put(NOTICE_KIND, key, {"conversation_id": conversation_id, "ms": now,
                                             "text": text, "kind": kind, "about": about})


def notices(client: Client, conversation_id: str) -> list[dict[str, Any]]:
    return [n for n in client.core.store.items(NOTICE_KIND)
            if n["conversation_id"] == conversation_id]


@dataclass
class ConversationRow:
    conversation_id: str
    title: str
    is_group: bool
    last_text: str
    last_ms: int
    unread: int
    protection: str


def _preview(message: IncomingMessage, mine: bool) -> str:
    text = message.text
    if message.attachments:
        names = ", ".join(a.name or "a file" for a in message.attachments)
        text = f"{text} [{names}]".strip() if text else f"sent {names}"
    return ("You: " if mine else "") + text


def conversation_rows(client: Client) -> list[ConversationRow]:
    """Every conversation this device knows, newest first."""
    by_conversation: dict[str, list[dict[str, Any]]] = {}
    for record in _records(client):
        by_conversation.setdefault(record["content"]["conversation_id"], []).append(record)
    for group in client.core.groups():
        by_conversation.setdefault(group.group_id, [])
    rows = []
    for conversation_id, records in by_conversation.items():
        read = read_mark(client, conversation_id)
        last_text, last_ms = "", 0
        if records:
            last = max(records, key=lambda r: int(r.get("server_ts_ms") or 0) or 2**62)
            mine = last.get("direction") == "out"
            last_text = _preview(message_of(last), mine)
            last_ms = int(last.get("server_ts_ms") or 0)
        unread = sum(1 for r in records if r.get("direction") != "out"
                     and int(r.get("server_ts_ms") or 0) > read)
        known = client.core.known_policy(conversation_id)
        protection = known.policy.label if known is not None else ""
        rows.append(ConversationRow(conversation_id, title_of(client, conversation_id),
                                    is_group_id(conversation_id), last_text, last_ms,
                                    unread, protection))
    rows.sort(key=lambda row: row.last_ms or 2**62, reverse=True)
    return rows


@dataclass
class AttachmentView:
    index: int
    ref: AttachmentRef
    is_image: bool
    size: str


@dataclass
class MessageView:
    key: MessageKey
    mine: bool
    sender: str
    text: str
    time: str
    ms: int
    mark: str  # "Sending…", "Sent" or "" (received)
    attachments: list[AttachmentView] = field(default_factory=list)
    notice: bool = False
    notice_kind: str = ""
    about: str | None = None


def conversation_items(client: Client, conversation_id: str, *, before: int | None = None
                       ) -> tuple[list[MessageView], int | None]:
    """Messages and notices, oldest first; a page of `PAGE` ending before index
    `before` (the newest page by default), and where the earlier page starts, if any."""
    pending = {entry.entry_id for entry in client.core.outbox()}
    items: list[MessageView] = []
    for record in _records(client, conversation_id):
        message = message_of(record)
        mine = record.get("direction") == "out"
        ms = int(record.get("server_ts_ms") or 0)
        mark = ""
        if mine:
            mark = "Sending…" if message.message_id in pending or ms == 0 else "Sent"
        views = [AttachmentView(i, ref, ref.mime in IMAGE_TYPES, size_words(ref.size))
                 for i, ref in enumerate(message.attachments)]
        items.append(MessageView(message.key, mine, "You" if mine else message.sender_user,
                                 message.text, clock(ms), ms or 2**62, mark, views))
    for notice in notices(client, conversation_id):
        items.append(MessageView(MessageKey(conversation_id, "covey", "notice"), False,
                                 "Covey", notice["text"], clock(notice["ms"]), notice["ms"],
                                 "", notice=True, notice_kind=notice["kind"],
                                 about=notice.get("about")))
    items.sort(key=lambda item: item.ms)
    end = len(items) if before is None else max(0, min(before, len(items)))
    start = max(0, end - PAGE)
    return items[start:end], (start if start > 0 else None)


def find_record(client: Client, key: MessageKey) -> dict[str, Any] | None:
    for record in _records(client, key.conversation_id):
        if (record["context"]["sender_user"] == key.sender_user
                and record["content"]["message_id"] == key.message_id):
            return record
    return None


def last_received_from(client: Client, conversation_id: str, user: str) -> MessageKey | None:
    received = [r for r in _records(client, conversation_id)
                if r.get("direction") != "out" and r["context"]["sender_user"] == user
                and int(r.get("server_ts_ms") or 0) > 0]
    if not received:
        return None
    return message_of(max(received, key=lambda r: int(r["server_ts_ms"]))).key
