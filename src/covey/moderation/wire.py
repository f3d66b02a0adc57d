"""JSON bodies of the reporting endpoints (`POST /v1/reports`, `POST /v1/blocks`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from covey.moderation.evidence import Report
from covey.protocol.ids import UserId


class ReportSubmission(BaseModel):
    """A report and whether to block the reported sender in the same action."""

    model_config = ConfigDict(extra="forbid")

    report: Report
    block: bool = False


class AttachmentStatusOut(BaseModel):
    """One attachment's own status (`verified`, `missing`, `hash_mismatch`,
    `size_mismatch`, `undecryptable`, `not_checked`): it never fails its message."""

    blob_id: str
    status: str


class ItemStatusOut(BaseModel):
    message_id: str
    sender_user: str | None = None
    status: str
    attachments: list[AttachmentStatusOut] = []


class ReportReceiptOut(BaseModel):
    """The server's answer: the report id (the same for a replay), what verified."""

    report_id: str
    duplicate: bool
    blocked: bool
    priority: int
    messages_submitted: int
    messages_verified: int
    reported_message_verified: bool
    items: list[ItemStatusOut]


class BlockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UserId


class BlockResponse(BaseModel):
    blocker: str
    blocked: str
