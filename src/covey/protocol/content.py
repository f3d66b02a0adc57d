"""The plaintext inside every ciphertext: what is franked, and how it is padded.

A `MessageContent` is encoded as canonical JSON (with its franking key), padded to a
size bucket, then encrypted with Olm or Megolm. Everything except the franking key is
bound by the commitment.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from covey.errors import InvalidInput
from covey.protocol._encoding import canonical_json
from covey.protocol.ids import BlobId, ConversationId, MessageId
from covey.protocol.secrets import FrankingKey, RedactedSecretFields

MAX_TEXT_BYTES = 64 * 1024
# Attachment references one message may carry (docs/protocol.md): each one is a blob the
# relay and a report's verifier may have to look up, so their number is bounded.
MAX_ATTACHMENTS_PER_MESSAGE = 8
MIN_BUCKET = 256
PAD_MARKER = b"\x80"


class _Strict(RedactedSecretFields, BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttachmentRef(_Strict):
    """An encrypted blob: its key and the SHA-256 of its stored ciphertext are franked."""

    blob_id: BlobId
    key: str = Field(description="base64 AES-256-GCM key (32 bytes)", repr=False)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of nonce‖ciphertext")
    size: int = Field(ge=0, description="plaintext size in bytes")
    mime: str = Field(default="application/octet-stream", max_length=255)
    name: str = Field(default="", max_length=255)


class RoomKey(_Strict):
    """A Megolm session key shared over Olm with one member device."""

    group_id: str
    session_id: str
    session_key: str = Field(repr=False)
    epoch: int = Field(ge=0)


class MessageContent(_Strict):
    """One message's plaintext. `kind` says which optional fields are set."""

    v: Literal[1] = 1
    kind: Literal["text", "attachment", "room_key"]
    message_id: MessageId
    conversation_id: ConversationId
    sent_at_ms: int = Field(ge=0)
    text: str = ""
    attachments: tuple[AttachmentRef, ...] = Field(default=(),
                                                   max_length=MAX_ATTACHMENTS_PER_MESSAGE)
    room_key: RoomKey | None = None
    franking_key: str = Field(description="base64 32-byte franking key", repr=False)

    @field_validator("text")
    @classmethod
    def _text_limit(cls, value: str) -> str:
        if len(value.encode("utf-8")) > MAX_TEXT_BYTES:
            raise ValueError(f"text is longer than {MAX_TEXT_BYTES} bytes")
        return value

    def committed_part(self) -> dict[str, Any]:
        """Everything the commitment binds: the content without its franking key."""
        return self.model_dump(mode="json", exclude={"franking_key"})

    def fk(self) -> FrankingKey:
        return FrankingKey.from_b64(self.franking_key)

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes) -> MessageContent:
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise InvalidInput(f"malformed message content: {exc.errors()[0]['msg']}") from exc


def bucket_size(length: int) -> int:
    """Smallest power-of-two bucket (≥ 256 bytes) that holds `length` bytes plus a marker."""
    size = MIN_BUCKET
    while size < length + 1:
        size *= 2
    return size


def pad(data: bytes) -> bytes:
    """ISO/IEC 7816-4 padding to the bucket size: data ‖ 0x80 ‖ 0x00…"""
    size = bucket_size(len(data))
    return data + PAD_MARKER + b"\x00" * (size - len(data) - 1)


def unpad(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(PAD_MARKER) or len(data) != bucket_size(len(stripped) - 1):
        raise InvalidInput("plaintext padding is malformed")
    return stripped[:-1]
