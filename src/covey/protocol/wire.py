"""Wire models for the HTTP API and the delivery WebSocket.

The server validates requests with these models and the client builds them with the
same models: they are the contract, documented field by field in docs/protocol.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from covey.protocol._encoding import labelled
from covey.protocol.content import MAX_ATTACHMENTS_PER_MESSAGE
from covey.protocol.ids import (
    BlobId,
    ConversationId,
    DeviceId,
    GroupId,
    MessageId,
    UserId,
)
from covey.protocol.secrets import RedactedSecretFields

# Canonical base64 only: the bits of the last character past the data must be zero (so
# each value has one spelling, not four); `_encoding.b64decode` checks the same.
B64_32 = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=?$",
                              description="base64, 32 bytes")]
B64_SIG = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9+/]{85}[AQgw](==)?$", description="base64 Ed25519 sig")
]
B64 = Annotated[str, Field(
    pattern=r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw](?:==)?"
            r"|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=?)?$",
    description="base64 bytes")]
KeyId = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/=_-]{1,64}$")]
MAX_ONE_TIME_KEYS_PER_UPLOAD = 100
MAX_CLAIM_DEVICES = 1024
MAX_GROUP_MEMBERS = 256


def _empty(value: Any) -> bool:
    return not value


class WireModel(RedactedSecretFields, BaseModel):
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
    link_token: str = Field(repr=False)
    expires_at_ms: int


class AddDeviceRequest(WireModel):
    link_token: Annotated[str, Field(min_length=16, max_length=128, repr=False)]
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
    token: str = Field(repr=False)
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
    # Members the viewer and these no longer exchange messages with in this group: the
    # contact rules, checked on every message, forbid it now (a band lapsed, a contact
    # removed, a block). Per viewer; clients leave them out of sends and key shares.
    withheld: list[UserId] = Field(default_factory=list)
    # Accounts invited but not yet members (shown to admins only): an unverified or
    # under-16 account joins a group only by accepting its invitation
    # (POST /v1/group-invitations/{id}/accept).
    invited: list[UserId] = Field(default_factory=list, exclude_if=_empty)


class GroupList(WireModel):
    groups: list[GroupInfo]


GROUP_INVITATION_ID_PATTERN = r"^gi_[0-9a-f]{24}$"
GroupInvitationId = Annotated[str, Field(pattern=GROUP_INVITATION_ID_PATTERN)]


class GroupInvitation(WireModel):
    """An invitation to join a group, waiting for the invitee's answer."""

    invitation_id: GroupInvitationId
    group_id: GroupId
    group_name: str
    invited_by: UserId
    created_ms: int
    expires_ms: int


class GroupInvitationList(WireModel):
    invitations: list[GroupInvitation]


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


MAX_SAFETY_COPY_BYTES = 256 * 1024  # sealed; never more than the whole envelope may be


class SafetyCopy(WireModel):
    """A safeguarded message's plaintext sealed to the safety service (RFC 9180 HPKE, see
    `covey.protocol.safety_copy`): `sealed` is HPKE `enc ‖ ciphertext`, base64."""

    v: Literal[1] = 1
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    sealed: Annotated[B64, Field(max_length=(MAX_SAFETY_COPY_BYTES * 4) // 3 + 4)]


class SendEnvelope(WireModel):
    """What a device submits. `recipients` must list exactly the target devices."""

    message_id: MessageId
    conversation_id: ConversationId
    commitment: B64_32 = Field(description="franking commitment c")
    recipients: Annotated[list[RecipientCiphertext], Field(min_length=1)]
    group: GroupCiphertext | None = None
    group_epoch: int | None = Field(default=None, ge=0)
    safety_copy: SafetyCopy | None = Field(
        default=None, description="required exactly when the conversation's policy says "
        "safety_copy_required (GET /v1/conversations/{id}/policy); refused otherwise")
    blob_ids: Annotated[list[BlobId], Field(max_length=MAX_ATTACHMENTS_PER_MESSAGE)] | None = (
        Field(default=None, description="every blob the message's attachments reference; "
              "the relay lets this conversation's participants download exactly these. "
              "Absent (an older client): none, except those a safety copy names"))


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
    # Left out when empty, so a delivery without attachments reads as it did for clients
    # that predate the field.
    blob_ids: list[BlobId] = Field(
        default_factory=list, exclude_if=_empty, description="the blobs the relay "
        "recorded for this message (its envelope's blob_ids): clients fetch no other "
        "attachment for it; absent when none")


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


class DeviceListChangedFrame(WireModel):
    """A device was added to `user_id` (this account, a contact or a group co-member):
    fetch its device list again. Clients compare it with the list they knew and show the
    change; older clients ignore the frame."""

    type: Literal["device_list_changed"] = "device_list_changed"
    user_id: UserId


class AgeProofNeededFrame(WireModel):
    """The account's age band is unverified, expired or about to expire: prove it again
    (POST /v1/age/challenge, then /v1/age/presentation). Older clients ignore it."""

    type: Literal["age_proof_needed"] = "age_proof_needed"
    band: str
    expires_at_ms: int | None = None
    reason: Literal["unverified", "expired", "expiring"]


class GuardianAlertFrame(WireModel):
    """A new alert for a guardian (`GuardianAlert`, in the guardians section below)."""

    type: Literal["guardian_alert"] = "guardian_alert"
    alert: GuardianAlert


class DetectionNotice(WireModel):
    """A safety notice for a child in one conversation (a detector saw behaviour there,
    e.g. grooming): the behaviours, plain-language text, a help link, and the message to
    block and report with one tap. Sent only to the child's devices; nobody else is told."""

    notice_id: Annotated[str, Field(pattern=r"^sn_[A-Za-z0-9_-]{8,64}$")]
    conversation_id: ConversationId
    message_id: MessageId
    sender_user: UserId
    detector: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    behaviours: Annotated[list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]],
                          Field(max_length=16)]
    text: Annotated[str, Field(max_length=4000)]
    help_url: Annotated[str, Field(max_length=500)]
    created_at_ms: int


class SafetyNoticeFrame(WireModel):
    """A safety notice for this (child's) account, in one of its conversations."""

    type: Literal["safety_notice"] = "safety_notice"
    notice: DetectionNotice


class ContactRequestFrame(WireModel):
    """Someone asks to be this account's contact. `requester_band` is the requester's age
    band as the server knows it, sent only to an under-16 target."""

    type: Literal["contact_request"] = "contact_request"
    request_id: Annotated[str, Field(pattern=r"^cr_[0-9a-f]{24}$")]
    requester: UserId
    requester_band: Literal["16+", "under-16", "unverified"] | None = None


class GuardianLinkFrame(WireModel):
    """Someone proposes a guardian link with this account (`link` is pending): the
    account accepts or declines it. Older clients ignore the frame."""

    type: Literal["guardian_link"] = "guardian_link"
    link: GuardianLink


class ModeratorWarningFrame(WireModel):
    """A moderator warned this account about a reported message (`ModeratorWarning`, in
    the reports section below). Also listed by GET /v1/me/warnings, for devices that
    were offline. Older clients ignore the frame."""

    type: Literal["moderator_warning"] = "moderator_warning"
    warning: ModeratorWarning


class GroupInvitationFrame(WireModel):
    """This account is invited to a group: it becomes a member only if it accepts."""

    type: Literal["group_invitation"] = "group_invitation"
    invitation: GroupInvitation


ServerFrame = Annotated[
    DeliveryFrame | SentFrame | ErrorFrame | KeysLowFrame | GroupChangedFrame
    | AgeProofNeededFrame | GuardianAlertFrame | ContactRequestFrame | DeviceListChangedFrame
    | GuardianLinkFrame | ModeratorWarningFrame
    | GroupInvitationFrame | SafetyNoticeFrame,
    Field(discriminator="type"),
]
SERVER_FRAME = TypeAdapter[
    DeliveryFrame | SentFrame | ErrorFrame | KeysLowFrame | GroupChangedFrame
    | AgeProofNeededFrame | GuardianAlertFrame | ContactRequestFrame | DeviceListChangedFrame
    | GuardianLinkFrame | ModeratorWarningFrame
    | GroupInvitationFrame | SafetyNoticeFrame
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


# --- safety policy (docs/safety-policy.md) -------------------------------------------


class ConversationPolicyBody(WireModel):
    """`covey.safety.policy.ConversationPolicy.to_json()`: what every client shows."""

    mode: Literal["safeguarded", "on-device", "e2ee-only"]
    protection: Literal["end-to-end", "safeguarded", "on-device-detection"]
    code: str
    label: str
    reason: str
    safety_copy_required: bool
    server_detection: bool
    on_device_detection_users: list[UserId]
    age_threshold_years: int


class PolicyStatement(WireModel):
    """A conversation's policy, signed with the server's policy key (Ed25519) over
    `covey/conversation-policy/v1 NUL JCS({conversation_id, epoch, issued_at_ms, policy})`."""

    conversation_id: ConversationId
    epoch: int = Field(ge=0, description="the group's epoch; 0 for direct conversations")
    issued_at_ms: int
    policy: ConversationPolicyBody
    signature: B64_SIG


class SafetyKeys(WireModel):
    """The server's policy-signing key and the safety service's HPKE key, the latter
    signed by the former over `covey/safety-service-key/v1 NUL JCS({x25519, key_id,
    mode})`. Clients pin `policy_signing_key` on first use."""

    policy_signing_key: B64_32
    safety_service_key: B64_32
    safety_service_key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    mode: Literal["safeguarded", "on-device", "e2ee-only"]
    signature: B64_SIG


class OnDeviceRules(WireModel):
    """The detector rules clients scan with on the device (mode on-device): for each
    detector that runs there, the text it is built from (`Detector.to_rules`), and the
    rules' version (SHA-256 of their canonical JSON). Signed by the policy key over
    `covey/on-device-rules/v2 NUL JCS({mode, version, detectors})`. Empty in other
    modes. A client keeps the last rules that verified and built."""

    mode: Literal["safeguarded", "on-device", "e2ee-only"]
    version: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    detectors: Annotated[dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")],
                              Annotated[str, Field(max_length=1024 * 1024)]],
                         Field(max_length=16)]
    signature: B64_SIG


class UserRef(WireModel):
    user_id: UserId


class UserLookup(WireModel):
    """A handle search hit. Refused searches are 404s, like unknown handles."""

    user_id: UserId
    contact: bool


class ContactRequestInfo(WireModel):
    request_id: Annotated[str, Field(pattern=r"^cr_[0-9a-f]{24}$")]
    requester: UserId
    target: UserId
    status: Literal["pending", "accepted", "declined", "cancelled"]
    created_ms: int
    # The requester's age band as the server knows it (not as the requester claims), on
    # requests listed for an under-16 target; None elsewhere.
    requester_band: Literal["16+", "under-16", "unverified"] | None = None


class ContactRequestList(WireModel):
    incoming: list[ContactRequestInfo]
    outgoing: list[ContactRequestInfo]


class SafetyNoticeBody(WireModel):
    code: str
    text: str


class ContactInfo(WireModel):
    user_id: UserId
    since_ms: int
    safety_notice: SafetyNoticeBody | None = Field(
        default=None, description="shown to an under-16 viewer next to an account several "
        "young people blocked or reported")


class ContactList(WireModel):
    contacts: list[ContactInfo]


class UserIdList(WireModel):
    users: list[UserId]


class InviteResponse(WireModel):
    token: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$", repr=False)]
    group_id: GroupId
    expires_ms: int


class JoinRequest(WireModel):
    token: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$", repr=False)]


# --- guardians (docs/safety-policy.md#guardians) -------------------------------------

MAX_GUARDIANS = 4
GuardianLinkId = Annotated[str, Field(pattern=r"^gl_[A-Za-z0-9_-]{8,36}$")]
GuardianAlertId = Annotated[str, Field(pattern=r"^ga_[A-Za-z0-9_-]{8,36}$")]
# A code from the server's own vocabulary (report categories, detector names and codes).
SafetyCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,63}$")]
GuardianLinkStatus = Literal["pending", "active", "removal_requested"]
GuardianAlertKind = Literal["report_filed", "contact_accepted", "high_risk_detection",
                            "removal_requested"]


class ProposeGuardianLink(WireModel):
    """Ask `user_id` to link with you; `role` is the role `user_id` would have: "guardian"
    when an under-16 account asks a 16+ account, "child" the other way round."""

    user_id: UserId
    role: Literal["guardian", "child"]


class GuardianLink(WireModel):
    link_id: GuardianLinkId
    child: UserId
    guardian: UserId
    status: GuardianLinkStatus
    proposed_by: UserId
    created_at_ms: int
    accepted_at_ms: int | None = None
    removal_requested_at_ms: int | None = None


class GuardianLinkList(WireModel):
    """Every link this account is part of, as child or as guardian."""

    links: list[GuardianLink]


class GuardianRemoval(WireModel):
    """`removed`, or `removal_requested` while the link waits for the guardian's consent."""

    link_id: GuardianLinkId
    outcome: Literal["removed", "removal_requested"]
    link: GuardianLink | None = None


class GuardianAlert(WireModel):
    """A safety fact about a linked child: ids and codes, never message content. Which
    optional fields are set depends on `kind` (docs/protocol.md)."""

    alert_id: GuardianAlertId
    guardian: UserId
    child: UserId
    kind: GuardianAlertKind
    created_at_ms: int
    acknowledged_at_ms: int | None = None
    category: SafetyCode | None = None
    other_user: UserId | None = None
    conversation_id: ConversationId | None = None
    detector: SafetyCode | None = None
    code: SafetyCode | None = None
    severity: Literal["low", "medium", "high"] | None = None


class GuardianAlertList(WireModel):
    alerts: list[GuardianAlert]


class AcknowledgeAlertsRequest(WireModel):
    alert_ids: Annotated[list[GuardianAlertId], Field(min_length=1, max_length=500)]


class AcknowledgeAlertsResponse(WireModel):
    acknowledged: int


# --- moderator warnings (docs/reporting.md) ------------------------------------------


class ModeratorWarning(WireModel):
    """A moderator's warning to this account after a report about a message it sent:
    the report's category and when, never who reported or which message (that would
    point at the reporter)."""

    warning_id: Annotated[int, Field(ge=1)]
    category: SafetyCode | None = None
    created_at_ms: int


class ModeratorWarningList(WireModel):
    warnings: list[ModeratorWarning]
