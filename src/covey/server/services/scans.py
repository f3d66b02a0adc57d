"""The scan queue: every detector sees every kept message, even across a crash.

A job naming the message (conversation, sender user and device, message id) is written in
the message's own transaction (`storage/_batch.py`). After the commit the message service
hands this process's fresh messages over with their already-opened content; a sweep picks
up everything else that is due (start-up, another process's expired claim, retries),
opening the stored safety copy again. Each job's content goes to the whole detector set
(`covey.safety.detectors.DetectorSet`, from settings, hot-reloaded) as decrypted
`Content` (attachment bytes fetched and decrypted for detectors that read them), with the
participants' bands; a conversation detector (grooming) gets its stored state for the
conversation and gives the next. What a signal asks for is done: a safety notice to the
children in the conversation, a `DetectionRaised` event (guardian alerts), a moderator
report through `report_sink` with the verified evidence (earlier messages named by the
signal rebuilt from their safety copies). The job is deleted only when every report was
filed; otherwise it stays with its reason, is retried with exponential backoff, logged at
WARNING and shown on the moderation console; notices and alerts go out once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from covey.errors import CoveyError
from covey.protocol._encoding import b64encode
from covey.protocol.attachments import open_attachment
from covey.protocol.content import MessageContent
from covey.protocol.franking import TagContext, server_tag
from covey.protocol.safety_copy import SafetyCopyContext, SafetyServicePrivateKey, open_safety_copy
from covey.protocol.secrets import FrankingCommitment, ServerFrankingKey
from covey.protocol.wire import SafetyCopy
from covey.safety.detectors import (
    Content,
    ConversationDetector,
    Detector,
    Response,
    ScanContext,
    Severity,
    Signal,
)
from covey.server.services._common import now_ms
from covey.server.services.blobs import BlobService
from covey.server.services.safety_events import DetectionRaised, SafetyEvents
from covey.server.services.safety_notices import SafetyNoticeService
from covey.server.storage.detector_states import DetectorStateStore
from covey.server.storage.repository import MailboxEntry, NewMessage
from covey.server.storage.scan_jobs import (
    MessageKey,
    ScanBacklog,
    ScanJobStore,
    ScanOutcome,
    StoredCopy,
)
from covey.settings import Settings

log = logging.getLogger(__name__)

# Files a detection report: (signal, the stored message, the opened content, earlier
# messages of the conversation the signal names as evidence, oldest first).
DetectionSink = Callable[[Signal, NewMessage, MessageContent,
                          Sequence[tuple[NewMessage, MessageContent]]], Awaitable[None]]
# A participant's age band ("16+", "under-16", "unverified").
BandOf = Callable[[str], Awaitable[str]]
# The detectors enabled right now (the operator's files may change while running).
DetectorSet = Callable[[], Sequence[Detector]]

_SWEEP_BATCH = 100


@dataclass(frozen=True)
class _Work:
    message: NewMessage
    content: MessageContent
    attempts: int = 0
    alerted: bool = False

    @property
    def key(self) -> MessageKey:
        m = self.message
        return MessageKey(m.conversation_id, m.sender_user, m.sender_device, m.message_id)


def message_key(message: NewMessage) -> MessageKey:
    return MessageKey(message.conversation_id, message.sender_user, message.sender_device,
                      message.message_id)


class ScanQueue:
    def __init__(self, settings: Settings, store: ScanJobStore, detectors: DetectorSet,
                 safety_key: Callable[[], SafetyServicePrivateKey],
                 server_key: ServerFrankingKey, events: SafetyEvents, *,
                 states: DetectorStateStore, band_of: BandOf,
                 notices: SafetyNoticeService, blobs: BlobService) -> None:
        self._settings = settings
        self.store = store
        self._detectors = detectors
        self._states = states
        self._band_of = band_of
        self._notices = notices
        self._blobs = blobs
        self._last_purge = 0
        self._safety_key = safety_key
        self._server_key = server_key
        self._events = events
        self._minimum = Severity.parse(settings.detector_report_min_severity)
        self._fresh: asyncio.Queue[_Work] = asyncio.Queue()
        self._in_hand: set[MessageKey] = set()
        self._task: asyncio.Task[None] | None = None
        self.report_sink: DetectionSink | None = None  # set by the reporting wiring

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Run the worker: it sweeps the table at once (jobs left by a dead process)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="covey-scans")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def submit(self, message: NewMessage, content: MessageContent) -> None:
        """After the commit: scan this process's fresh message with its opened content
        (its job row is already durable)."""
        if content.kind == "room_key" or message.safety_copy is None:
            return
        work = _Work(message, content)
        self._in_hand.add(work.key)
        self._fresh.put_nowait(work)

    async def backlog(self) -> ScanBacklog:
        return await self.store.backlog(now_ms())

    # --- the worker ----------------------------------------------------------------------

    async def _run(self) -> None:
        interval = max(0.05, self._settings.scan_sweep_interval_s)
        if self._settings.safety_mode == "safeguarded":
            # Build the detectors (lexicons) now, off the event loop, not on the first scan.
            try:
                await asyncio.to_thread(self._detectors)
            except Exception:
                log.exception("building the detectors failed")
        while True:
            try:
                await self._sweep()
                await self._purge_states()
            except Exception:
                log.exception("sweeping the scan queue failed")
            try:
                first = await asyncio.wait_for(self._fresh.get(), interval)
            except TimeoutError:
                continue
            if self._settings.scan_delay_s > 0:
                await asyncio.sleep(self._settings.scan_delay_s)
            batch = [first]
            while not self._fresh.empty() and len(batch) < _SWEEP_BATCH:
                batch.append(self._fresh.get_nowait())
            await self._scan_all(batch)

    async def _purge_states(self) -> None:
        """Conversation detector state lives as long as the safety copies it came from."""
        now = now_ms()
        if now - self._last_purge < self._settings.safety_copy_purge_interval_s * 1000:
            return
        self._last_purge = now
        removed = await self._states.purge(now - self._settings.safety_copy_retention_s * 1000)
        if removed:
            log.info("deleted %d detector states past retention", removed)

    async def _sweep(self) -> None:
        lease_ms = int(self._settings.scan_lease_s * 1000)
        claimed = await self.store.claim_due(now_ms(), lease_ms, _SWEEP_BATCH,
                                             set(self._in_hand))
        work: list[_Work] = []
        for job in claimed:
            copy = await self.store.copy_for(job.key)
            if copy is None:
                log.warning("scan job for message %s in %s dropped: its safety copy is no "
                            "longer stored (expired before it could be scanned)",
                            job.key.message_id, job.key.conversation_id)
                await self.store.drop(job.key)
                continue
            try:
                content = self._open(copy)
            except CoveyError as exc:
                log.warning("scan job for message %s in %s dropped: the stored safety copy "
                            "does not open (%s)", job.key.message_id,
                            job.key.conversation_id, exc.code)
                await self.store.drop(job.key)
                continue
            self._in_hand.add(job.key)
            work.append(_Work(self._message(copy), content, job.attempts, job.alerted))
        if work:
            await self._scan_all(work)

    async def _scan_all(self, batch: list[_Work]) -> None:
        outcomes = []
        for work in batch:
            try:
                outcomes.append(await self._scan(work))
            except Exception as exc:  # a detector bug: keep the job, retry later
                log.exception("scanning message %s failed", work.message.message_id)
                outcomes.append(self._retry(work, f"scan failed: {type(exc).__name__}",
                                            alerted=work.alerted))
        try:
            await self.store.finish(outcomes)
        except Exception:
            log.exception("recording %d scans failed; their jobs run again", len(outcomes))
        finally:
            for work in batch:
                self._in_hand.discard(work.key)

    async def _scan(self, work: _Work) -> ScanOutcome:
        message, content = work.message, work.content
        detectors = self._detectors()
        if not detectors:  # nothing read the copy: nothing to log, nothing to retry
            return ScanOutcome(work.key, None)
        bands = {user: str(await self._band_of(user)) for user in message.participants}
        context = ScanContext(message.message_id, message.conversation_id,
                              message.sender_user, bands=bands,
                              sent_at_ms=message.server_ts_ms)
        opened = Content.of(content, await self._attachment_bytes(content, detectors))
        signals, states = await self._run_detectors(detectors, opened, context)
        acting = [signal for signal in signals if signal.asks(Response.REPORT, self._minimum)
                  or signal.asks(Response.GUARDIAN) or signal.asks(Response.NOTICE)]
        failures: list[str] = []
        for signal in acting:
            log.info("detector %s flagged message %s in %s (%s)", signal.detector,
                     signal.message_id, signal.conversation_id, signal.code)
            if not signal.asks(Response.REPORT, self._minimum) or self.report_sink is None:
                continue
            try:
                await self.report_sink(signal, message, content,
                                       await self._evidence(signal, message))
            except CoveyError as exc:
                failures.append(f"{signal.detector} {signal.code}: {exc.code}: {exc.message}")
            except Exception as exc:
                failures.append(f"{signal.detector} {signal.code}: {type(exc).__name__}: "
                                f"{exc}")
        if not work.alerted:
            # Notices and guardian alerts go out once, whether or not a report was filed.
            await self._alert(acting, message, bands)
        if failures:
            # The state is not saved: the retry scores this message again from the same
            # state (and the cool-down it records), so nothing counts twice.
            return self._retry(work, "; ".join(failures), alerted=bool(acting))
        await self._states.save(message.conversation_id, states, now_ms())
        return ScanOutcome(work.key, now_ms())

    async def _run_detectors(self, detectors: Sequence[Detector], content: Content,
                             context: ScanContext) -> tuple[list[Signal], dict[str, str]]:
        stateful = [d.name for d in detectors if isinstance(d, ConversationDetector)]
        before = await self._states.states(context.conversation_id, stateful)
        after: dict[str, str] = {}
        signals: list[Signal] = []
        for detector in detectors:
            if isinstance(detector, ConversationDetector):
                scan = detector.scan_conversation(content, context, before.get(detector.name))
                if scan.state is not None and scan.state != before.get(detector.name):
                    after[detector.name] = scan.state
                signals.extend(scan.signals)
            else:
                signals.extend(detector.scan(content, context))
        return signals, after

    async def _alert(self, signals: Sequence[Signal], message: NewMessage,
                     bands: dict[str, str]) -> None:
        children = [user for user in message.participants
                    if user != message.sender_user and bands.get(user) != "16+"]
        for signal in signals:
            if signal.asks(Response.NOTICE) and signal.notice and children:
                behaviours = signal.detail.get("behaviours") or [signal.code.split(".")[-1]]
                await self._notices.send(children, self._notices.notice(
                    conversation_id=message.conversation_id, message_id=message.message_id,
                    sender_user=message.sender_user, detector=signal.detector,
                    behaviours=[str(b) for b in behaviours], text=signal.notice))
            if signal.asks(Response.GUARDIAN) or signal.asks(Response.REPORT, self._minimum):
                behaviours = signal.detail.get("behaviours")
                code = (f"{signal.detector}." + ".".join(str(b) for b in behaviours)
                        if behaviours else signal.code)[:64].rstrip(".")
                await self._events.emit(DetectionRaised(
                    conversation_id=message.conversation_id, sender_user=message.sender_user,
                    participants=tuple(message.participants), detector=signal.detector,
                    code=code, severity=signal.severity.name.lower(), at_ms=now_ms(),
                    alert_guardians=signal.asks(Response.GUARDIAN),
                    category=signal.category.value))

    async def _attachment_bytes(self, content: MessageContent,
                                detectors: Sequence[Detector]) -> dict[str, bytes]:
        """Each attachment's plaintext, for detectors that read bytes: the blob the
        relay holds, decrypted with the franked key (a blob that does not open under it is
        left out: the reference alone is scanned)."""
        if not content.attachments or not any(d.wants_bytes for d in detectors):
            return {}
        found: dict[str, bytes] = {}
        for ref in content.attachments:
            if ref.size > self._settings.scan_attachment_max_bytes:
                continue
            try:
                path, _row = await self._blobs.locate(ref.blob_id)
                blob = await asyncio.to_thread(path.read_bytes)
            except (CoveyError, OSError):
                continue
            opened = await asyncio.to_thread(open_attachment, blob, ref)
            if opened.plaintext is not None:
                found[ref.blob_id] = opened.plaintext
        return found

    async def _evidence(self, signal: Signal, message: NewMessage
                        ) -> list[tuple[NewMessage, MessageContent]]:
        """Earlier messages the signal names as evidence, rebuilt from their safety
        copies (those past retention are left out), oldest first."""
        named = signal.detail.get("evidence") or []
        wanted = list(dict.fromkeys((str(e["sender_user"]), str(e["message_id"]))
                                    for e in named if e.get("message_id")
                                    != message.message_id))
        earlier = []
        for sender, message_id in wanted:
            copy = await self.store.copy_by_id(message.conversation_id, sender, message_id)
            if copy is None:
                continue
            try:
                earlier.append((self._message(copy), self._open(copy)))
            except CoveyError:
                continue
        earlier.sort(key=lambda pair: pair[0].server_ts_ms)
        return earlier[-10:]

    def _retry(self, work: _Work, reason: str, *, alerted: bool) -> ScanOutcome:
        attempt = work.attempts + 1
        delay_s = min(self._settings.scan_retry_max_s,
                      self._settings.scan_retry_base_s * 2 ** (attempt - 1))
        log.warning("detection report for message %s in %s could not be filed (attempt %d, "
                    "next in %.1f s): %s", work.message.message_id,
                    work.message.conversation_id, attempt, delay_s, reason)
        return ScanOutcome(work.key, now_ms(), reason, now_ms() + int(delay_s * 1000),
                           alerted or work.alerted)

    # --- rebuilding a message from its stored copy ---------------------------------------

    def _open(self, copy: StoredCopy) -> MessageContent:
        key = copy.key
        context = SafetyCopyContext(
            message_id=key.message_id, conversation_id=key.conversation_id,
            sender_user=key.sender_user, sender_device=key.sender_device,
            participants=tuple(copy.participants),
            commitment=FrankingCommitment.from_b64(copy.commitment))
        return open_safety_copy(SafetyCopy(key_id=copy.key_id, sealed=b64encode(copy.sealed)),
                                context, self._safety_key())

    def _message(self, copy: StoredCopy) -> NewMessage:
        """The message as the relay stored it, with each recipient user's franking tag
        computed again (the tag is a pure function of what the copy row holds)."""
        key = copy.key
        commitment = FrankingCommitment.from_b64(copy.commitment)
        entries = [MailboxEntry(
            device_pk=0, user_id=user, device_id="", olm_type=None, body=None,
            franking_tag=server_tag(self._server_key, commitment, TagContext(
                sender_user=key.sender_user, sender_device=key.sender_device,
                recipient_user=user, conversation_id=key.conversation_id,
                server_ts_ms=copy.server_ts_ms, message_id=key.message_id)).to_b64())
            for user in copy.participants if user != key.sender_user]
        return NewMessage(
            sender_device_pk=0, sender_user=key.sender_user, sender_device=key.sender_device,
            message_id=key.message_id, conversation_id=key.conversation_id,
            commitment=copy.commitment, server_ts_ms=copy.server_ts_ms,
            participants=list(copy.participants), group_session_id=None, group_body=None,
            expires_ms=0, entries=entries)
