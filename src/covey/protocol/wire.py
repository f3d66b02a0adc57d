"""Wire models for the HTTP API and the delivery WebSocket.

The server validates requests with these models and the client builds them with the
same models: they are the contract, documented field by field in docs/protocol.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from covey.protocol._encoding import labelled
from covey.protocol.ids import (
    BlobId,
    ConversationId,
    DeviceId,
    GroupId,
    MessageId,
    UserId,
)

B64_32 = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{43}=?$", description="base64, 32 bytes")]
B64_SIG = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9+/]{86}(==)?$", description="base64 Ed25519 sig")
]
B64 = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$", description="base64 bytes")]
KeyId = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/=_-]{1,64}$")]
MAX_ONE_TIME_KEYS_PER_UPLOAD = 100
MAX_CLAIM_DEVICES = 1024
MAX_GROUP_MEMBERS = 256


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- signed statements -------------------------------------------------------------


def device_signing_bytes(
    user_id: str, device_id: str, identity_key: str, signing_key: str
) -> bytes:
    """What a device signs with its Ed25519 key to vouch for its own keys."""
    return labelled(
        "device",
        {
            "user_id": user_id,
            "device_id": device_id,
            "identity_key": identity_key,
            "signing_key": signing_key,
        },
    )


def one_time_key_signing_bytes(
    user_id: str, device_id: str, key_id: str, key: str, fallback: bool
) -> bytes:
    return labelled(
        "one-time-key",
        {
            "user_id": user_id,
            "device_id": device_id,
            "key_id": key_id,
            "key": key,
            "fallback": fallback,
        },
    )


def login_signing_bytes(user_id: str, device_id: str, challenge: str) -> bytes:
    return labelled("login", {"user_id": user_id, "device_id": device_id, "challenge": challenge})


# --- accounts, devices, login --------------------------------------------------------


class DeviceKeys(WireModel):
    user_id: UserId
    device_id: DeviceId
    identity_key: B64_32 = Field(description="Curve25519 identity key (Olm)")
    signing_key: B64_32 = Field(description="Ed25519 signing key")
    signature: B64_SIG = Field(description="signing_key's signature over device_signing_bytes")


class RegisterRequest(WireModel):
    device: DeviceKeys


class RegisterResponse(WireModel):
    user_id: UserId
    device_id: DeviceId


class LinkTokenResponse(WireModel):
    link_token: str
    expires_at_ms: int


class AddDeviceRequest(WireModel):
    link_token: Annotated[str, Field(min_length=16, max_length=128)]
    device: DeviceKeys


class ChallengeRequest(WireModel):
    user_id: UserId
    device_id: DeviceId


class ChallengeResponse(WireModel):
    challenge_id: str
    challenge: B64_32
    expires_at_ms: int


class TokenRequest(WireModel):
    challenge_id: Annotated[str, Field(min_length=8, max_length=128)]
    signature: B64_SIG


class TokenResponse(WireModel):
    token: str
    expires_at_ms: int
    one_time_key_count: int


# --- keys ------------------------------------------------------------------------


class SignedKey(WireModel):
    key_id: KeyId
    key: B64_32 = Field(description="Curve25519 public key")
    signature: B64_SIG = Field(description="device signature over one_time_key_signing_bytes")


class KeysUploadRequest(WireModel):
    one_time_keys: Annotated[list[SignedKey], Field(max_length=MAX_ONE_TIME_KEYS_PER_UPLOAD)] = []
    fallback_key: SignedKey | None = None


class KeyCountResponse(WireModel):
    one_time_key_count: int
    has_fallback_key: bool


class DeviceList(WireModel):
    user_id: UserId
    devices: list[DeviceKeys]


class DeviceRef(WireModel):
    user_id: UserId
    device_id: DeviceId


class ClaimRequest(WireModel):
    devices: Annotated[list[DeviceRef], Field(min_length=1, max_length=MAX_CLAIM_DEVICES)]


class KeyBundle(WireModel):
    device: DeviceKeys
    one_time_key: SignedKey
    fallback: bool = Field(description="true when no one-time key was left")


class ClaimResponse(WireModel):
    bundles: list[KeyBundle]
    missing: list[DeviceRef] = Field(description="devices unknown or without any key")


# --- groups ------------------------------------------------------------------------


class CreateGroupRequest(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    members: Annotated[list[UserId], Field(max_length=MAX_GROUP_MEMBERS)] = []


class GroupMember(WireModel):
    user_id: UserId
    role: Literal["admin", "member"]


class GroupInfo(WireModel):
    group_id: GroupId
    name: str
    epoch: int = Field(description="increases on every membership change")
    members: list[GroupMember]


class GroupList(WireModel):
    groups: list[GroupInfo]


class AddMemberRequest(WireModel):
    user_id: UserId


# --- messages ----------------------------------------------------------------------


class RecipientCiphertext(WireModel):
    """One target device. Olm fields are set for 1:1 and key shares, absent for Megolm."""

    user_id: UserId
    device_id: DeviceId
    olm_type: Literal[0, 1] | None = Field(default=None, description="0 pre-key, 1 normal")
    body: B64 | None = None


class GroupCiphertext(WireModel):
    session_id: Annotated[str, Field(min_length=1, max_length=128)]
    body: B64


class SendEnvelope(WireModel):
    """What a device submits. `recipients` must list exactly the target devices."""

    message_id: MessageId
    conversation_id: ConversationId
    commitment: B64_32 = Field(description="franking commitment c")
    recipients: Annotated[list[RecipientCiphertext], Field(min_length=1)]
    group: GroupCiphertext | None = None
    group_epoch: int | None = Field(default=None, ge=0)


class SendReceipt(WireModel):
    message_id: MessageId
    server_ts_ms: int
    duplicate: bool = Field(description="true when this message id was already accepted")


class Delivery(WireModel):
    """One mailbox entry for one device, with the franking tag for its user."""

    seq: int
    message_id: MessageId
    conversation_id: ConversationId
    sender_user: UserId
    sender_device: DeviceId
    server_ts_ms: int
    commitment: B64_32
    franking_tag: B64_32
    participants: list[UserId]
    olm_type: Literal[0, 1] | None = None
    body: B64 | None = None
    group: GroupCiphertext | None = None


class PendingResponse(WireModel):
    deliveries: list[Delivery]


class AckRequest(WireModel):
    seqs: Annotated[list[int], Field(min_length=1, max_length=1000)]


class AckResponse(WireModel):
    removed: int


class BlobUploadResponse(WireModel):
    blob_id: BlobId
    sha256: str
    size: int


class ErrorBody(WireModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorResponse(WireModel):
    error: ErrorBody


# --- WebSocket frames -------------------------------------------------------------


class SendFrame(WireModel):
    type: Literal["send"] = "send"
    envelope: SendEnvelope


class AckFrame(WireModel):
    type: Literal["ack"] = "ack"
    seqs: Annotated[list[int], Field(min_length=1, max_length=1000)]


ClientFrame = Annotated[SendFrame | AckFrame, Field(discriminator="type")]
CLIENT_FRAME = TypeAdapter[SendFrame | AckFrame](ClientFrame)


class DeliveryFrame(WireModel):
    type: Literal["delivery"] = "delivery"
    delivery: Delivery


class SentFrame(WireModel):
    type: Literal["sent"] = "sent"
    receipt: SendReceipt


class ErrorFrame(WireModel):
    type: Literal["error"] = "error"
    message_id: str | None = None
    error: ErrorBody


class KeysLowFrame(WireModel):
    type: Literal["keys_low"] = "keys_low"
    one_time_key_count: int


class GroupChangedFrame(WireModel):
    type: Literal["group_changed"] = "group_changed"
    group_id: GroupId
    epoch: int


class AgeProofNeededFrame(WireModel):
    """The account's age band is unverified, expired or about to expire: prove it again
    (POST /v1/age/challenge, then /v1/age/presentation). Older clients ignore it."""

    type: Literal["age_proof_needed"] = "age_proof_needed"
    band: str
    expires_at_ms: int | None = None
    reason: Literal["unverified", "expired", "expiring"]


ServerFrame = Annotated[
    DeliveryFrame | SentFrame | ErrorFrame | KeysLowFrame | GroupChangedFrame
    | AgeProofNeededFrame,
    Field(discriminator="type"),
]
SERVER_FRAME = TypeAdapter[
    DeliveryFrame | SentFrame | ErrorFrame | KeysLowFrame | GroupChangedFrame
    | AgeProofNeededFrame
](ServerFrame)


# --- age assurance (docs/age-assurance.md) -----------------------------------------


class AgeChallengeRequest(WireModel):
    band: Literal["16+", "under-16"]
    horizon_days: int | None = Field(default=None, description="under-16 only: 90, 30, 7 or 1")


class AgeStatus(WireModel):
    """What the server keeps about an account's age: nothing more."""

    band: Literal["16+", "under-16", "unverified"]
    expires_at_ms: int | None = None
    issuer_id: str | None = None
    verified_at_ms: int | None = None


class MeResponse(WireModel):
    user_id: UserId
    device_id: DeviceId
    devices: list[DeviceId]
    age: AgeStatus
