"""What the client hands to the application: received messages (with franking
evidence for a later report), dropped messages, send outcomes and guardian alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from covey.protocol.attachments import AttachmentStatus
from covey.protocol.content import AttachmentRef, MessageContent
from covey.protocol.franking import FrankingContext, TagContext
from covey.protocol.ids import MessageKey, is_group_id
from covey.protocol.secrets import FrankingCommitment, FrankingTag
from covey.protocol.wire import ConversationPolicyBody
from covey.protocol.wire import GuardianAlert as WireGuardianAlert


@dataclass(frozen=True)
class FrankingEvidence:
    """Everything a report needs: the plaintext with its franking key, the commitment,
    the server's tag for this recipient and the context both were computed over."""

    content: MessageContent
    commitment: FrankingCommitment
    tag: FrankingTag | None
    context: FrankingContext
    recipient_user: str
    server_ts_ms: int

    def tag_context(self) -> TagContext:
        """What the server's tag was computed over, for checking it in a report."""
        return TagContext(self.context.sender_user, self.context.sender_device,
                          self.recipient_user, self.context.conversation_id,
                          self.server_ts_ms, self.content.message_id)

    def to_record(self) -> dict[str, Any]:
        return {
            "content": self.content.model_dump(mode="json"),
            "commitment": self.commitment.to_b64(),
            "tag": None if self.tag is None else self.tag.to_b64(),
            "context": self.context.to_json(),
            "recipient_user": self.recipient_user,
            "server_ts_ms": self.server_ts_ms,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FrankingEvidence:
        context = record["context"]
        return cls(
            content=MessageContent.model_validate(record["content"]),
            commitment=FrankingCommitment.from_b64(record["commitment"]),
            tag=None if record["tag"] is None else FrankingTag.from_b64(record["tag"]),
            context=FrankingContext(context["conversation_id"], context["sender_user"],
                                    context["sender_device"], tuple(context["participants"])),
            recipient_user=record["recipient_user"],
            server_ts_ms=int(record["server_ts_ms"]),
        )


@dataclass(frozen=True)
class IncomingMessage:
    """A message that decrypted, parsed and opened its franking commitment."""

    message_id: str
    conversation_id: str
    sender_user: str
    sender_device: str
    server_ts_ms: int
    text: str
    attachments: tuple[AttachmentRef, ...]
    evidence: FrankingEvidence
    muted: bool = False  # the recipient muted the sender: deliver without notifying
    # The blobs its envelope declared (as the relay recorded them): the only attachments
    # of this message the client fetches.
    blob_ids: tuple[str, ...] = ()

    @property
    def is_group(self) -> bool:
        return is_group_id(self.conversation_id)

    @property
    def key(self) -> MessageKey:
        """What names this message (report it by this, not by `message_id`: ids are
        unique per sender device only)."""
        return MessageKey(self.conversation_id, self.sender_user, self.message_id)

    @classmethod
    def from_evidence(cls, evidence: FrankingEvidence,
                      blob_ids: tuple[str, ...] = ()) -> IncomingMessage:
        content, context = evidence.content, evidence.context
        return cls(
            message_id=content.message_id,
            conversation_id=content.conversation_id,
            sender_user=context.sender_user,
            sender_device=context.sender_device,
            server_ts_ms=evidence.server_ts_ms,
            text=content.text,
            attachments=content.attachments,
            evidence=evidence,
            blob_ids=blob_ids,
        )


@dataclass(frozen=True)
class AttachmentDownload:
    """One attachment fetched and checked against its franked reference. Show `data`
    only when `verified`; otherwise show `label` ("could not be verified") and why: the
    blob is missing or is not what the sender committed to (hash, size, key)."""

    ref: AttachmentRef
    status: AttachmentStatus
    data: bytes | None = field(default=None, repr=False)
    detail: str = ""

    @property
    def verified(self) -> bool:
        return self.status is AttachmentStatus.VERIFIED

    @property
    def withheld(self) -> bool:
        """The relay withheld it for safety (a known-image match): offer block-and-report."""
        return self.status is AttachmentStatus.WITHHELD

    @property
    def label(self) -> str:
        if self.withheld:
            return "withheld for safety"
        return "verified" if self.verified else "could not be verified"


@dataclass(frozen=True)
class MessageDropped:
    """A delivery that was not shown: undecryptable, malformed, or not opening its
    franking commitment. `reason` is a stable code."""

    reason: str
    detail: str
    message_id: str
    conversation_id: str
    sender_user: str
    sender_device: str
    seq: int


@dataclass(frozen=True)
class RoomKeyReceived:
    """A member device shared its Megolm session for a group with this device."""

    group_id: str
    session_id: str
    sender_user: str
    sender_device: str


@dataclass(frozen=True)
class MessageSent:
    """The server durably accepted a message (`duplicate` on a resend)."""

    message_id: str
    conversation_id: str
    server_ts_ms: int
    duplicate: bool


@dataclass(frozen=True)
class PolicyChanged:
    """A conversation's protection changed (e.g. a child joined, or everyone is now
    16+): show the new `policy.label`."""

    conversation_id: str
    policy: ConversationPolicyBody


@dataclass(frozen=True)
class SafetyWarning:
    """On-device detection (mode on-device) flagged a received message. Shown to the
    user only; nothing about it leaves the device unless they report."""

    conversation_id: str
    message_id: str
    sender_user: str
    code: str
    severity: str
    text: str = ("This message may not be safe. You don't have to reply: you can block "
                 "and report this person with one tap.")


@dataclass(frozen=True)
class SafetyNotice:
    """A safety notice for this (child's) account in one conversation: a detector saw
    behaviour there (`behaviours`, e.g. "off_platform", "secrecy") and `text` explains
    it in plain words. Show it in the conversation with one tap to block and report
    (`Client.block_and_report(notice)`) and the `help_url` link. `on_device`: this
    device's own detectors raised it (nothing was sent anywhere); otherwise the server's
    safety service did, on the conversation's safety copies."""

    notice_id: str
    conversation_id: str
    message_id: str
    sender_user: str
    detector: str
    behaviours: tuple[str, ...]
    text: str
    help_url: str
    created_at_ms: int
    on_device: bool = False

    @property
    def key(self) -> MessageKey:
        """The message to report (the one that reached the threshold)."""
        return MessageKey(self.conversation_id, self.sender_user, self.message_id)


@dataclass(frozen=True)
class DeviceListChanged:
    """`user_id`'s device list changed since this client last fetched it (`user_id` may
    be this account: a device you did not add means someone else can read your
    messages). Show it; new devices get messages only from now on."""

    user_id: str
    added: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class SendFailed:
    """The server refused a message for good; it was removed from the outbox."""

    message_id: str
    conversation_id: str
    code: str
    detail: str


@dataclass(frozen=True)
class GuardianAlert:
    """A safety alert about a child this account is the guardian of (or, listed by the
    child, one sent about it): ids and codes, never message content. Which optional
    fields are set depends on `kind` (report_filed: `category`; contact_accepted:
    `other_user`; high_risk_detection: `conversation_id`, `detector`, `code`,
    `severity`; removal_requested: none)."""

    alert_id: str
    guardian: str
    child: str
    kind: str
    created_at_ms: int
    acknowledged_at_ms: int | None = None
    category: str | None = None
    other_user: str | None = None
    conversation_id: str | None = None
    detector: str | None = None
    code: str | None = None
    severity: str | None = None

    @classmethod
    def from_wire(cls, alert: WireGuardianAlert) -> GuardianAlert:
        return cls(**alert.model_dump())


# How a child is shown who asks to be its contact (the server's knowledge, not a claim).
BAND_WORDS = {"16+": "16 or over", "under-16": "under 16", "unverified": "unverified"}


@dataclass(frozen=True)
class ContactRequestReceived:
    """Someone asks to be this account's contact. For an under-16 account,
    `requester_band` is the requester's band as the server knows it ("16+", "under-16",
    "unverified"; `band_words` reads it out), never what the requester claims."""

    request_id: str
    requester: str
    requester_band: str | None = None

    @property
    def band_words(self) -> str | None:
        return None if self.requester_band is None else BAND_WORDS[self.requester_band]


@dataclass(frozen=True)
class GroupInvited:
    """`invited_by` invites this account to a group. It becomes a member only by
    accepting (`Client.accept_group_invitation`); nobody adds an unverified or under-16
    account to a group without it."""

    invitation_id: str
    group_id: str
    group_name: str
    invited_by: str
    expires_ms: int


@dataclass(frozen=True)
class GroupMembersWithheld:
    """In `group_id`, the contact rules (checked on every message) no longer let this
    account and `users` message each other: neither side's messages, nor its group key,
    reach the other, until the rules allow it again (e.g. a band proven again)."""

    group_id: str
    users: tuple[str, ...]
    reason: str = ("the contact rules no longer let you and these members message each "
                   "other in this group")


@dataclass(frozen=True)
class GroupChanged:
    """A group this account is in changed. `joined`: this account was added to it (say
    "you were added to NAME"); `left`: it is no longer a member (removed, or it left);
    otherwise `added` and `removed` list the members who came and went."""

    group_id: str
    name: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    joined: bool = False
    left: bool = False


@dataclass(frozen=True)
class GuardianLinkProposed:
    """Someone proposes a guardian link with this account: `proposed_by` offers to be
    the guardian of `child`, or (a child) asks `guardian` to be theirs. Accept or
    decline it (`Client.accept_guardian_link`, `remove_guardian_link`)."""

    link_id: str
    child: str
    guardian: str
    proposed_by: str


@dataclass(frozen=True)
class ModeratorWarning:
    """A moderator reviewed a report about a message this account sent and warned it.
    Only the report's category and the time: never who reported, or which message.
    Arrives live, or at the next connection for a device that was offline."""

    warning_id: int
    category: str | None
    created_at_ms: int

    @property
    def text(self) -> str:
        about = f" ({self.category.replace('_', ' ')})" if self.category else ""
        return (f"A moderator reviewed a report about a message you sent{about} and warned "
                "you: it breaks the rules of this service. More reports can get your "
                "account suspended.")


Event = (IncomingMessage | MessageDropped | RoomKeyReceived | MessageSent | SendFailed
         | GuardianAlert | PolicyChanged | SafetyWarning | SafetyNotice | ContactRequestReceived
         | GroupMembersWithheld | DeviceListChanged | GroupChanged
         | GuardianLinkProposed | ModeratorWarning | GroupInvited)
