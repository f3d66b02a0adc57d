"""Safety copies on the relay (safeguarded conversations, docs/safety-policy.md).

`check` runs before a message is stored: when the conversation's policy requires a copy
it opens it with the safety service's key and checks it against the envelope's franking
commitment (refusing a missing, undecryptable or mismatched copy); when the policy does
not, it refuses a copy, so an E2EE conversation never hands the server its plaintext.
Every attachment reference in an opened copy must match the relay's blob table (id,
SHA-256, size): a reference the child's client could not verify is refused on arrival.
The sealed copy is stored as the client made it, in the same transaction as the message,
and deleted when its retention ends. After the commit the opened content goes through the
detectors once (a read the audit log records); a reportable signal raises a moderator
report and a `DetectionRaised` event. Room-key shares are checked and never kept."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from covey.errors import Conflict, InvalidInput
from covey.protocol._encoding import b64decode
from covey.protocol.attachments import AttachmentStatus, stored_blob_matches
from covey.protocol.content import MessageContent
from covey.protocol.safety_copy import SafetyCopyContext, open_safety_copy
from covey.protocol.secrets import FrankingCommitment
from covey.protocol.wire import SendEnvelope
from covey.safety.detectors import ScanContext, Severity, Signal
from covey.safety.detectors.phrase_list import PhraseListDetector
from covey.safety.policy import ConversationPolicy
from covey.server.services._common import Principal, now_ms
from covey.server.services.policy import PolicyService
from covey.server.services.safety_events import DetectionRaised, SafetyEvents
from covey.server.storage.repository import BlobRow, NewMessage, SafetyCopyRecord
from covey.server.storage.safety_repo import SafetyRepository
from covey.settings import Settings

log = logging.getLogger(__name__)

ANSWERED_REQUEST_RETENTION_S = 30 * 24 * 3600

# Files a detection report: (signal, the stored message, the opened content).
DetectionSink = Callable[[Signal, NewMessage, MessageContent], Awaitable[None]]
BlobLookup = Callable[[str], Awaitable[BlobRow | None]]


async def check_attachment_refs(content: MessageContent, blob_row: BlobLookup) -> None:
    """Refuse (400 `attachment_reference_invalid`, naming the attachment) a safeguarded
    message whose attachment reference does not match the stored blob: a child's client
    would show it as unverifiable, and a detection report could not verify it."""
    for index, ref in enumerate(content.attachments):
        row = await blob_row(ref.blob_id)
        status = stored_blob_matches(ref, None if row is None else row.sha256,
                                     None if row is None else row.size)
        if status is not AttachmentStatus.VERIFIED:
            raise InvalidInput(
                f"attachment {ref.blob_id} does not match the stored blob "
                f"({status.value}): upload it again and send a fresh reference",
                code="attachment_reference_invalid",
                details={"blob_id": ref.blob_id, "index": index, "problem": status.value})


@dataclass(frozen=True)
class OpenedCopy:
    content: MessageContent
    record: SafetyCopyRecord | None  # None: checked, not kept (room-key shares)


class SafetyCopyService:
    def __init__(self, settings: Settings, store: SafetyRepository, policy: PolicyService,
                 events: SafetyEvents) -> None:
        self._settings = settings
        self._store = store
        self._policy = policy
        self._events = events
        self._minimum = Severity.parse(settings.detector_report_min_severity)
        self._tasks: set[asyncio.Task[None]] = set()
        self.report_sink: DetectionSink | None = None  # set by the reporting wiring

    def check(self, principal: Principal, env: SendEnvelope, participants: list[str],
              policy: ConversationPolicy, server_ts_ms: int) -> OpenedCopy | None:
        if not policy.safety_copy_required:
            if env.safety_copy is not None:
                raise Conflict(
                    "this conversation is end-to-end encrypted: send it without a safety "
                    "copy (fetch the conversation's policy again)",
                    code="safety_copy_not_expected",
                    details={"protection": policy.protection.value})
            return None
        context = SafetyCopyContext(
            message_id=env.message_id, conversation_id=env.conversation_id,
            sender_user=principal.user_id, sender_device=principal.device_id,
            participants=tuple(participants),
            commitment=FrankingCommitment.from_b64(env.commitment))
        content = open_safety_copy(env.safety_copy, context, self._policy.safety_key)
        assert env.safety_copy is not None
        if content.kind == "room_key":
            return OpenedCopy(content, None)
        return OpenedCopy(content, SafetyCopyRecord(
            key_id=env.safety_copy.key_id,
            sealed=b64decode(env.safety_copy.sealed, field="safety_copy.sealed"),
            expires_ms=server_ts_ms + self._settings.safety_copy_retention_s * 1000))

    def scan_soon(self, message: NewMessage, content: MessageContent) -> None:
        """After the commit: run the detectors on the opened copy (not on room keys)."""
        detector = self._policy.phrases.current()[1]
        if content.kind == "room_key" or detector is None:
            return
        task = asyncio.get_running_loop().create_task(self._scan(detector, message, content))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _scan(self, detector: PhraseListDetector, message: NewMessage,
                    content: MessageContent) -> None:
        try:
            signals = detector.scan(content, ScanContext(
                message.message_id, message.conversation_id, message.sender_user))
            await self._store.record_scan(message.conversation_id, message.message_id,
                                          message.sender_user, now_ms())
            for signal in signals:
                if not signal.should_report(self._minimum):
                    continue
                log.info("detector %s flagged message %s in %s (%s)", signal.detector,
                         signal.message_id, signal.conversation_id, signal.code)
                if self.report_sink is not None:
                    try:
                        await self.report_sink(signal, message, content)
                    except Exception:  # the guardian alert still goes out
                        log.exception("filing the detection report for %s failed",
                                      message.message_id)
                await self._events.emit(DetectionRaised(
                    conversation_id=message.conversation_id, sender_user=message.sender_user,
                    participants=tuple(message.participants), detector=signal.detector,
                    code=signal.code, severity=signal.severity.name.lower(),
                    at_ms=now_ms()))
        except Exception:
            log.exception("scanning message %s failed", message.message_id)

    async def purge_loop(self) -> None:
        """Now and then, forever: delete safety copies past retention, expired invite
        links, and contact requests answered more than `ANSWERED_REQUEST_RETENTION_S`
        ago (never inside the window that limits requests to children)."""
        keep_s = max(ANSWERED_REQUEST_RETENTION_S,
                     self._settings.minor_contact_request_window_s)
        while True:
            try:
                now = now_ms()
                removed = await self._store.purge(now, now - keep_s * 1000)
                for what, count in removed.items():
                    if count:
                        log.info("deleted %d %s past retention", count, what)
            except Exception:
                log.exception("safety purge failed")
            await asyncio.sleep(self._settings.safety_copy_purge_interval_s)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
