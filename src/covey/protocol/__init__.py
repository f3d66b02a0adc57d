"""Covey's wire format, franking and canonical encoding: pure functions, no I/O."""

from covey.protocol._encoding import b64decode, b64encode, canonical_json, labelled
from covey.protocol.attachments import decrypt_attachment, encrypt_attachment
from covey.protocol.content import AttachmentRef, MessageContent, RoomKey, pad, unpad
from covey.protocol.franking import (
    FrankingContext,
    TagContext,
    check_opens,
    commit,
    opens,
    server_tag,
    tag_is_valid,
)
from covey.protocol.ids import dm_conversation_id, new_message_id
from covey.protocol.secrets import (
    FrankingCommitment,
    FrankingKey,
    FrankingTag,
    ServerFrankingKey,
)
from covey.protocol.wire import Delivery, SendEnvelope

Envelope = SendEnvelope

__all__ = [
    "AttachmentRef",
    "Delivery",
    "Envelope",
    "FrankingCommitment",
    "FrankingContext",
    "FrankingKey",
    "FrankingTag",
    "MessageContent",
    "RoomKey",
    "SendEnvelope",
    "ServerFrankingKey",
    "TagContext",
    "b64decode",
    "b64encode",
    "canonical_json",
    "check_opens",
    "commit",
    "decrypt_attachment",
    "dm_conversation_id",
    "encrypt_attachment",
    "labelled",
    "new_message_id",
    "opens",
    "pad",
    "server_tag",
    "tag_is_valid",
    "unpad",
]
