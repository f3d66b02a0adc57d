"""Message franking (Messenger 2016 / Grubbs et al. 2017 / IETF MIMI).

sender:    c   = HMAC-SHA256(fk, covey/franking-commit/v1 NUL JCS({content, context}))
server:    tag = HMAC-SHA256(server_key, covey/franking-tag/v1 NUL JCS({commitment, sender,
                 recipient, conversation, server time, message id}))
recipient: recompute c after decryption and drop the message when it does not open.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from covey.errors import FrankingError
from covey.protocol._encoding import labelled
from covey.protocol.secrets import (
    FrankingCommitment,
    FrankingKey,
    FrankingTag,
    ServerFrankingKey,
)


@dataclass(frozen=True)
class FrankingContext:
    """Who and where: bound into the commitment so evidence cannot be spliced elsewhere."""

    conversation_id: str
    sender_user: str
    sender_device: str
    participants: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "sender_user": self.sender_user,
            "sender_device": self.sender_device,
            "participants": sorted(set(self.participants)),
        }


@dataclass(frozen=True)
class TagContext:
    """What the server binds into its tag when it accepts a message for one recipient."""

    sender_user: str
    sender_device: str
    recipient_user: str
    conversation_id: str
    server_ts_ms: int
    message_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "sender_user": self.sender_user,
            "sender_device": self.sender_device,
            "recipient_user": self.recipient_user,
            "conversation_id": self.conversation_id,
            "server_ts_ms": self.server_ts_ms,
            "message_id": self.message_id,
        }


def commitment_input(content: dict[str, Any], context: FrankingContext) -> bytes:
    """The exact bytes the commitment MACs. `content` must not contain the franking key."""
    if "franking_key" in content:
        raise ValueError("the franking key is not part of the committed content")
    return labelled("franking-commit", {"content": content, "context": context.to_json()})


def commit(
    fk: FrankingKey, content: dict[str, Any], context: FrankingContext
) -> FrankingCommitment:
    mac = hmac.new(fk.raw, commitment_input(content, context), hashlib.sha256).digest()
    return FrankingCommitment(mac)


def opens(
    commitment: FrankingCommitment,
    fk: FrankingKey,
    content: dict[str, Any],
    context: FrankingContext,
) -> bool:
    """True when `commitment` opens to this content and context (constant-time compare)."""
    expected = hmac.new(fk.raw, commitment_input(content, context), hashlib.sha256).digest()
    return hmac.compare_digest(expected, commitment.raw)


def check_opens(
    commitment: FrankingCommitment,
    fk: FrankingKey,
    content: dict[str, Any],
    context: FrankingContext,
) -> None:
    if not opens(commitment, fk, content, context):
        raise FrankingError("the message does not open its franking commitment")


def tag_input(commitment: FrankingCommitment, context: TagContext) -> bytes:
    return labelled("franking-tag", {"commitment": commitment.to_b64(), **context.to_json()})


def server_tag(
    key: ServerFrankingKey, commitment: FrankingCommitment, context: TagContext
) -> FrankingTag:
    return FrankingTag(hmac.new(key.raw, tag_input(commitment, context), hashlib.sha256).digest())


def tag_is_valid(
    key: ServerFrankingKey,
    tag: FrankingTag,
    commitment: FrankingCommitment,
    context: TagContext,
) -> bool:
    return hmac.compare_digest(server_tag(key, commitment, context).raw, tag.raw)
