"""What a reporter hands over: franked evidence for each message, and the report itself.

An `EvidenceItem` is one received message revealed in full (plaintext with its franking
key, commitment, server tag and the context both were computed over); a `Report` is the
reported message plus up to ten preceding messages of the same conversation. A message
is named by its `MessageKey` (conversation, sender user, message id): message ids are
unique per sender device only, so an id alone can name another sender's message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from covey.errors import InvalidInput
from covey.protocol.content import MessageContent
from covey.protocol.franking import FrankingContext, TagContext
from covey.protocol.ids import ConversationId, DeviceId, MessageId, MessageKey, UserId
from covey.protocol.wire import B64_32, MAX_GROUP_MEMBERS

MAX_PRECEDING = 10
MAX_COMMENT_CHARS = 2000
# Attachment references one report may carry in all (docs/reporting.md): the server reads
# a blob for each, so a report is bounded however many messages it holds. Clients leave
# out the oldest preceding messages to stay under it; the reported message always fits
# (it carries at most MAX_ATTACHMENTS_PER_MESSAGE).
MAX_ATTACHMENTS_PER_REPORT = 16


class ReportCategory(StrEnum):
    """Why a message is reported. The first three are child-safety categories."""

    CHILD_SEXUAL_EXPLOITATION_IMAGERY = "child_sexual_exploitation_imagery"
    GROOMING_OR_ENTICEMENT = "grooming_or_enticement"
    SEXTORTION = "sextortion"
    HARASSMENT = "harassment"
    SPAM = "spam"
    OTHER = "other"

    @property
    def is_child_safety(self) -> bool:
        return self in _CHILD_SAFETY


_CHILD_SAFETY = frozenset({
    ReportCategory.CHILD_SEXUAL_EXPLOITATION_IMAGERY,
    ReportCategory.GROOMING_OR_ENTICEMENT,
    ReportCategory.SEXTORTION,
})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvidenceContext(_Strict):
    """Who sent the message to whom, where and when, as the server saw it.

    `recipient_user` is None only for a message the reporter sent from this device: the
    server tags messages per recipient, so the sending device never holds a tag."""

    sender_user: UserId
    sender_device: DeviceId
    recipient_user: UserId | None
    conversation_id: ConversationId
    participants: Annotated[tuple[UserId, ...], Field(min_length=1,
                                                      max_length=MAX_GROUP_MEMBERS)]
    server_ts_ms: int = Field(ge=0)
    message_id: MessageId

    def franking(self) -> FrankingContext:
        """The context the sender's commitment binds."""
        return FrankingContext(self.conversation_id, self.sender_user, self.sender_device,
                               tuple(sorted(set(self.participants))))

    def tag(self) -> TagContext | None:
        """The context the server's tag binds, or None without a recipient."""
        if self.recipient_user is None:
            return None
        return TagContext(self.sender_user, self.sender_device, self.recipient_user,
                          self.conversation_id, self.server_ts_ms, self.message_id)


class EvidenceItem(_Strict):
    """One revealed message: content with its franking key, commitment, tag, context."""

    content: MessageContent
    commitment: B64_32
    tag: B64_32 | None = None
    context: EvidenceContext

    @property
    def message_id(self) -> str:
        return self.context.message_id

    @property
    def key(self) -> MessageKey:
        ctx = self.context
        return MessageKey(ctx.conversation_id, ctx.sender_user, ctx.message_id)

    @classmethod
    def from_client_record(cls, record: Mapping[str, Any]) -> EvidenceItem:
        """Build from a client history record (`FrankingEvidence.to_record()` shape)."""
        try:
            content = MessageContent.model_validate(record["content"])
            context = record["context"]
            return cls(
                content=content,
                commitment=record["commitment"],
                tag=record.get("tag"),
                context=EvidenceContext(
                    sender_user=context["sender_user"],
                    sender_device=context["sender_device"],
                    recipient_user=record.get("recipient_user"),
                    conversation_id=context["conversation_id"],
                    participants=tuple(context["participants"]),
                    server_ts_ms=int(record["server_ts_ms"]),
                    message_id=content.message_id,
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed evidence record: {_first_error(exc)}") from exc


class Report(_Strict):
    """A report: the reported message plus up to ten preceding messages of its
    conversation (both directions), a category, an optional comment, and the reporter."""

    reporter: UserId
    reported_message_id: MessageId
    # The reported message's sender and conversation: with the id, its `MessageKey`.
    # Optional for older clients; without them the id must name exactly one message.
    reported_sender_user: UserId | None = None
    reported_conversation_id: ConversationId | None = None
    category: ReportCategory
    comment: str = Field(default="", max_length=MAX_COMMENT_CHARS)
    messages: Annotated[tuple[EvidenceItem, ...], Field(min_length=1,
                                                        max_length=MAX_PRECEDING + 1)]

    @field_validator("messages")
    @classmethod
    def _attachment_cap(cls, value: tuple[EvidenceItem, ...]) -> tuple[EvidenceItem, ...]:
        total = sum(len(item.content.attachments) for item in value)
        if total > MAX_ATTACHMENTS_PER_REPORT:
            raise ValueError(f"{total} attachment references; a report may carry at most "
                             f"{MAX_ATTACHMENTS_PER_REPORT}")
        return value

    @property
    def reported_key(self) -> MessageKey | None:
        """The reported message's full key, when the report names its sender and
        conversation."""
        if self.reported_sender_user is None or self.reported_conversation_id is None:
            return None
        return MessageKey(self.reported_conversation_id, self.reported_sender_user,
                          self.reported_message_id)

    def names(self, item: EvidenceItem) -> bool:
        """Whether `item` is the message this report is about."""
        if item.message_id != self.reported_message_id:
            return False
        if self.reported_sender_user is not None and (
                item.context.sender_user != self.reported_sender_user):
            return False
        return self.reported_conversation_id is None or (
            item.context.conversation_id == self.reported_conversation_id)

    @field_validator("comment")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
            raise ValueError("comment contains control characters")
        return value

    @classmethod
    def from_json(cls, data: bytes | str) -> Report:
        """Parse a submitted report; any malformation is an `InvalidInput`."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise InvalidInput(f"malformed report: {_first_error(exc)}",
                               code="report_invalid") from exc

    @classmethod
    def from_history(cls, reporter: str, reported: MessageKey, category: ReportCategory,
                     records: Iterable[Mapping[str, Any]], *, comment: str = "") -> Report:
        """Build a report from a conversation's client history (oldest first): the
        reported message and the (at most ten) messages before it, fewer when their
        attachment references would pass MAX_ATTACHMENTS_PER_REPORT."""
        items = [EvidenceItem.from_client_record(r) for r in records]
        index = next((i for i, item in enumerate(items) if item.key == reported), None)
        if index is None:
            raise InvalidInput("the reported message is not in this history",
                               code="reported_message_missing")
        window = items[max(0, index - MAX_PRECEDING): index + 1]
        while len(window) > 1 and sum(len(i.content.attachments)
                                      for i in window) > MAX_ATTACHMENTS_PER_REPORT:
            window = window[1:]  # the oldest context goes first
        try:
            return cls(reporter=reporter, reported_message_id=reported.message_id,
                       reported_sender_user=reported.sender_user,
                       reported_conversation_id=reported.conversation_id,
                       category=category, comment=comment, messages=tuple(window))
        except ValidationError as exc:
            raise InvalidInput(f"malformed report: {_first_error(exc)}",
                               code="report_invalid") from exc


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc)
