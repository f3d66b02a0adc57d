"""Franked conversations in memory, for tests, benchmarks and demos.

Builds real evidence through `covey.protocol` exactly as sender, server and recipient
would (commitment, per-recipient server tag, encrypted attachment blobs), without
sessions or a network. Never used on the request path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from covey.moderation.evidence import EvidenceContext, EvidenceItem
from covey.protocol.attachments import encrypt_attachment
from covey.protocol.content import AttachmentRef, MessageContent
from covey.protocol.franking import FrankingContext, TagContext, commit, server_tag
from covey.protocol.ids import new_blob_id, new_message_id
from covey.protocol.secrets import FrankingCommitment, FrankingKey, ServerFrankingKey


@dataclass(frozen=True)
class SentMessage:
    """One message as the server accepted it."""

    content: MessageContent
    commitment: FrankingCommitment
    sender_user: str
    sender_device: str
    participants: tuple[str, ...]
    server_ts_ms: int


@dataclass
class FrankedConversation:
    """A conversation whose messages are franked with `server_key`."""

    server_key: ServerFrankingKey
    conversation_id: str
    participants: tuple[str, ...]
    clock_ms: int = 1_767_225_600_000
    messages: list[SentMessage] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def upload(self, data: bytes, *, name: str = "", mime: str = "image/png") -> AttachmentRef:
        """Encrypt an attachment as a client would and keep its blob, as the server would."""
        blob, key, digest = encrypt_attachment(data)
        blob_id = new_blob_id()
        self.blobs[blob_id] = blob
        return AttachmentRef(blob_id=blob_id, key=key, sha256=digest, size=len(data),
                             mime=mime, name=name)

    def send(self, sender_user: str, sender_device: str, text: str = "", *,
             attachments: tuple[AttachmentRef, ...] = (),
             franking_key: FrankingKey | None = None,
             message_id: str | None = None) -> SentMessage:
        """Sender commits; the server accepts it one second after the previous message.
        `message_id` lets a test reuse an id (a dishonest sender can)."""
        self.clock_ms += 1000
        fk = franking_key or FrankingKey.generate()
        content = MessageContent(
            kind="attachment" if attachments else "text",
            message_id=message_id or new_message_id(),
            conversation_id=self.conversation_id, sent_at_ms=self.clock_ms - 200,
            text=text, attachments=attachments, franking_key=fk.to_b64())
        participants = tuple(sorted(set(self.participants)))
        context = FrankingContext(self.conversation_id, sender_user, sender_device,
                                  participants)
        message = SentMessage(content, commit(fk, content.committed_part(), context),
                              sender_user, sender_device, participants, self.clock_ms)
        self.messages.append(message)
        return message

    def tag_for(self, message: SentMessage, recipient_user: str) -> str:
        """The server's tag for one recipient user, as delivered to that user's devices."""
        return server_tag(self.server_key, message.commitment, TagContext(
            message.sender_user, message.sender_device, recipient_user,
            self.conversation_id, message.server_ts_ms, message.content.message_id)).to_b64()

    def evidence(self, message: SentMessage, holder: str, *, tagged: bool = True
                 ) -> EvidenceItem:
        """What `holder`'s device keeps for `message`. A sender's own sending device has
        no tag (`tagged=False`); its other devices received one for the sender."""
        return EvidenceItem(
            content=message.content,
            commitment=message.commitment.to_b64(),
            tag=self.tag_for(message, holder) if tagged else None,
            context=EvidenceContext(
                sender_user=message.sender_user, sender_device=message.sender_device,
                recipient_user=holder if tagged else None,
                conversation_id=self.conversation_id, participants=message.participants,
                server_ts_ms=message.server_ts_ms, message_id=message.content.message_id))

    def history(self, holder: str) -> tuple[EvidenceItem, ...]:
        """Every message as `holder` holds it, each tagged for them."""
        return tuple(self.evidence(m, holder) for m in self.messages)
