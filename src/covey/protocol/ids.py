"""Identifier formats and the helpers that build them."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Annotated

from pydantic import StringConstraints

from covey.errors import InvalidInput

USER_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{2,31}$"
DEVICE_ID_PATTERN = r"^[A-Za-z0-9_-]{4,64}$"
MESSAGE_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
GROUP_ID_PATTERN = r"^grp_[A-Za-z0-9_-]{8,64}$"
DM_ID_PATTERN = r"^dm:[a-z0-9][a-z0-9_.-]{2,31}:[a-z0-9][a-z0-9_.-]{2,31}$"
CONVERSATION_ID_PATTERN = f"(?:{DM_ID_PATTERN[1:-1]})|(?:{GROUP_ID_PATTERN[1:-1]})"
BLOB_ID_PATTERN = r"^blob_[A-Za-z0-9_-]{16,64}$"

UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
MessageId = Annotated[str, StringConstraints(pattern=MESSAGE_ID_PATTERN)]
GroupId = Annotated[str, StringConstraints(pattern=GROUP_ID_PATTERN)]
ConversationId = Annotated[str, StringConstraints(pattern=f"^(?:{CONVERSATION_ID_PATTERN})$")]
BlobId = Annotated[str, StringConstraints(pattern=BLOB_ID_PATTERN)]


@dataclass(frozen=True, slots=True)
class MessageKey:
    """What names one message everywhere (history, reports, evidence): message ids are
    unique per sender device only, so an id alone may name another sender's message."""

    conversation_id: str
    sender_user: str
    message_id: str

    def __str__(self) -> str:
        return f"{self.conversation_id}|{self.sender_user}|{self.message_id}"


def _token(nbytes: int) -> str:
    return secrets.token_urlsafe(nbytes).rstrip("=")


def new_message_id() -> str:
    return _token(16)


def new_device_id() -> str:
    return "D" + _token(9)


def new_group_id() -> str:
    return "grp_" + _token(12)


def new_blob_id() -> str:
    return "blob_" + _token(18)


def dm_conversation_id(user_a: str, user_b: str) -> str:
    """The one conversation id of a 1:1 chat: both handles, sorted."""
    if user_a == user_b:
        raise InvalidInput("a direct conversation needs two different users")
    low, high = sorted((user_a, user_b))
    return f"dm:{low}:{high}"


def dm_participants(conversation_id: str) -> tuple[str, str] | None:
    """The two users of a `dm:` conversation id, or None for a group id."""
    if not re.match(DM_ID_PATTERN, conversation_id):
        return None
    _, low, high = conversation_id.split(":")
    return low, high


def is_group_id(conversation_id: str) -> bool:
    return re.match(GROUP_ID_PATTERN, conversation_id) is not None
