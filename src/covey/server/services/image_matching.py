"""Known-image matching on the relay (docs/detection.md, "Acting on a match").

In a safeguarded conversation, `check` runs on the opened safety copy *before* the message
is stored and acknowledged: each attachment blob is read, decrypted with its franked key,
PDQ-hashed (eight dihedral hashes) and matched against the `BankIndex`. A match is written
at once (so the blob is withheld from everyone but its uploader before anyone can be told
of the message), and after the commit a prioritised moderator report with the verified
message, its blob and the bank entry is filed (`report_sink`); a sweep files any report a
crash or a failed filing left out. With no banked hash the check reads nothing.

A user's own report runs the same matching over the attachments it verified
(`match_report`)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covey.age import AgeBand
from covey.errors import CoveyError, Forbidden
from covey.moderation.evidence import MAX_ATTACHMENTS_PER_REPORT, MAX_PRECEDING
from covey.protocol.attachments import open_attachment
from covey.protocol.content import AttachmentRef, MessageContent
from covey.server.services._common import now_ms
from covey.server.services.age import AgeService
from covey.server.services.blobs import BlobService
from covey.server.services.safety_events import DetectionRaised, SafetyEvents
from covey.server.services.scans import ScanQueue
from covey.server.storage.image_matches import (
    RELAY,
    USER_REPORT,
    ImageMatchRow,
    ImageMatchStore,
)
from covey.server.storage.repository import BlobRow, NewMessage, Repository
from covey.server.storage.scan_jobs import MessageKey, StoredCopy
from covey.settings import Settings

if TYPE_CHECKING:  # numpy, FAISS and Pillow load in the background, off the start-up
    from covey.safety.images import QueryHashes
    from covey.server.services.bank_index import BankIndex, BankMatch

log = logging.getLogger(__name__)

WITHHELD_MESSAGE = ("this attachment was withheld for safety: it matched a known harmful "
                    "image")


@dataclass(frozen=True)
class MatchedMessage:
    """What a known-image report is filed from: the message and its opened content, the
    recipient whose view it is evidence of (a child when one takes part), the preceding
    messages that recipient received (opened from their kept safety copies), and the
    matches."""

    message: NewMessage
    content: MessageContent
    recipient: str
    preceding: tuple[tuple[NewMessage, MessageContent], ...]
    matches: tuple[ImageMatchRow, ...]


# Files the report for a relay match → its report id.
ImageReportSink = Callable[[MatchedMessage], Awaitable[str]]
# Opens a kept safety copy: the stored message (tags computed again) and its content.
CopyOpener = Callable[[StoredCopy], tuple[NewMessage, MessageContent]]
# Whether a participant is under 16 (the age service's `band_of`: a lapsed child counts).
ChildCheck = Callable[[str], Awaitable[bool]]
BlobLocator = Callable[[str], Awaitable[tuple[Path, BlobRow]]]

_SWEEP_INTERVAL_S = 30.0
LOAD_WAIT_S = 20.0
# How a known-image match is named to guardians (an alert's detector and code).
DETECTOR_NAME = "pdq"
KNOWN_IMAGE_CODE = "pdq.known_image"
_SWEEP_GRACE_MS = 60_000  # a report normally follows its commit within milliseconds


@dataclass(frozen=True, slots=True)
class HashedAttachment:
    ref: AttachmentRef
    plaintext_sha256: str
    queries: QueryHashes


def hash_attachment_bytes(ref: AttachmentRef, plaintext: bytes) -> HashedAttachment | None:
    """The dihedral PDQ hashes of one decrypted attachment; None when it is not an image
    Pillow can decode or its PDQ quality is under 50 (nothing reliable to match)."""
    from covey.safety.images import ImageRejected, query_hashes

    try:
        queries = query_hashes(plaintext)
    except ImageRejected:
        return None
    if not queries.usable:
        return None
    return HashedAttachment(ref, hashlib.sha256(plaintext).hexdigest(), queries)


def _read_and_hash(path: Path, ref: AttachmentRef) -> HashedAttachment | None:
    """Read the stored blob, decrypt it with its franked key, and hash it (in a thread)."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    opened = open_attachment(blob, ref)
    if opened.plaintext is None:
        return None
    return hash_attachment_bytes(ref, opened.plaintext)


class ImageMatchService:
    def __init__(self, make_index: Callable[[], BankIndex], store: ImageMatchStore,
                 locate_blob: BlobLocator, is_child: ChildCheck) -> None:
        self._make_index = make_index
        self.index: BankIndex | None = None  # None until loaded (`ready`)
        self._ready = asyncio.Event()
        self._loader: asyncio.Task[None] | None = None
        self.store = store
        self._locate_blob = locate_blob
        self._is_child = is_child
        self.report_sink: ImageReportSink | None = None  # set by the reporting wiring
        self.events: SafetyEvents | None = None  # guardian alerts (set by the wiring)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # Opens kept safety copies, for the context and for the sweep (set by the wiring).
        self.opener: CopyOpener | None = None
        # Older relay matches have no safety copy left to report from (set by the wiring).
        self.copy_retention_ms = 30 * 24 * 3600 * 1000
        self.copy_for: Callable[[MessageKey], Awaitable[StoredCopy | None]] | None = None

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load the banks in the background: the relay answers at once, and a check
        that arrives first waits for the index (`_loaded`)."""
        self._loader = asyncio.create_task(self._load(), name="covey-bank-load")
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="covey-image-reports")

    async def _load(self) -> None:
        # The import of numpy, FAISS, Pillow and pdqhash takes a second or more.
        index = await asyncio.to_thread(self._make_index)
        while True:
            try:
                await index.load()
                break
            except Exception:
                log.warning("loading the hash banks failed; retrying", exc_info=True)
                await asyncio.sleep(2)
        self.index = index
        index.start()
        self._ready.set()

    async def _loaded(self) -> BankIndex:
        """The index; a send that comes before it is loaded waits (fail closed), up to
        `LOAD_WAIT_S`, then gets 503 `safety_check_unavailable` and is resent."""
        if self.index is None:
            try:
                await asyncio.wait_for(self._ready.wait(), LOAD_WAIT_S)
            except TimeoutError as exc:
                raise CoveyError("the safety check is not ready yet; try again shortly",
                                 code="safety_check_unavailable", status=503) from exc
        assert self.index is not None
        return self.index

    async def close(self) -> None:
        if self.index is not None:
            await self.index.stop()
        tasks = [*self._tasks, *(t for t in (self._sweeper, self._loader) if t is not None)]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- the relay's check ---------------------------------------------------------------

    async def check(self, sender_user: str, sender_device: str, content: MessageContent,
                    participants: Sequence[str]) -> list[ImageMatchRow]:
        """Match every attachment of an opened safety copy; record (and so withhold) the
        ones that match. Called before the message is stored; cheap without banks."""
        if not content.attachments or len(await self._loaded()) == 0:
            return []
        hashed: list[HashedAttachment] = []
        for ref in content.attachments:
            try:
                path, _row = await self._locate_blob(ref.blob_id)
            except CoveyError:
                continue  # refused earlier by the reference check; nothing to read
            try:
                found = await asyncio.to_thread(_read_and_hash, path, ref)
            except Exception:  # a decoder bug must not fail the send: logged, delivered
                log.exception("hashing attachment %s failed", ref.blob_id)
                continue
            if found is not None:
                hashed.append(found)
        rows = await self._match(hashed, RELAY, sender_user, sender_device, content,
                                 participants, report_id=None)
        if rows:
            # A resend of a message already checked: its matches are recorded (and its
            # report filed) once.
            known = {m.blob_id for m in await self.store.for_message(
                content.conversation_id, sender_user, content.message_id)}
            rows = [r for r in rows if r.blob_id not in known]
        if rows:
            await self.store.record(rows)
            log.warning("known-image match: %d attachment(s) of message %s in %s withheld",
                        len(rows), content.message_id, content.conversation_id)
        return rows

    def report_soon(self, message: NewMessage, content: MessageContent,
                    rows: Sequence[ImageMatchRow]) -> None:
        """After the commit: file the moderator report (off the sender's path)."""
        self._spawn(self._report(message, content, rows))

    def forget_soon(self, rows: Sequence[ImageMatchRow]) -> None:
        """The message was not stored (refused at commit): drop its new match rows, so
        nothing is counted or reported for a message that does not exist. (Sending the
        blob again in any message matches it again.)"""
        self._spawn(self.store.delete([r.match_id for r in rows]))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, message: NewMessage, content: MessageContent,
                      rows: Sequence[ImageMatchRow]) -> None:
        if self.report_sink is None:
            return
        try:
            matched = await self._matched_message(message, content, rows)
            report_id = await self.report_sink(matched)
            await self.store.set_report([r.match_id for r in rows], report_id)
            if self.events is not None:  # a linked child's guardians: an alert, no content
                await self.events.emit(DetectionRaised(
                    conversation_id=message.conversation_id, sender_user=message.sender_user,
                    participants=tuple(message.participants), detector=DETECTOR_NAME,
                    code=KNOWN_IMAGE_CODE, severity="high", at_ms=now_ms(),
                    alert_guardians=True,
                    category="child_sexual_exploitation_imagery"))
        except Exception:
            log.exception("the report of a known-image match in message %s could not be "
                          "filed; the sweep retries", message.message_id)

    async def _matched_message(self, message: NewMessage, content: MessageContent,
                               rows: Sequence[ImageMatchRow]) -> MatchedMessage:
        recipients = sorted({e.user_id for e in message.entries
                             if e.user_id != message.sender_user})
        recipient = recipients[0] if recipients else message.sender_user
        for user in recipients:
            if await self._is_child(user):
                recipient = user
                break
        preceding: list[tuple[NewMessage, MessageContent]] = []
        if self.opener is not None:
            # Up to ten earlier messages to the same recipient, within the report's limit
            # of attachment references.
            room = MAX_ATTACHMENTS_PER_REPORT - len(content.attachments)
            copies = await self.store.preceding_copies(
                message.conversation_id, recipient, message.server_ts_ms, MAX_PRECEDING,
                now_ms())
            for copy in reversed(copies):
                try:
                    opened = self.opener(copy)
                except CoveyError:
                    continue
                if opened[1].kind == "room_key" or len(opened[1].attachments) > room:
                    continue
                room -= len(opened[1].attachments)
                preceding.insert(0, opened)
        return MatchedMessage(message, content, recipient, tuple(preceding), tuple(rows))

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL_S)
            try:
                await self.sweep_unreported()
            except Exception:
                log.exception("sweeping unreported image matches failed")

    async def sweep_unreported(self) -> int:
        """File the reports of relay matches a minute old or more that still have none,
        from their stored safety copies; how many messages were reported."""
        now = now_ms()
        pending = await self.store.unreported(now - _SWEEP_GRACE_MS,
                                              now - self.copy_retention_ms)
        by_message: dict[tuple[str, str, str], list[ImageMatchRow]] = {}
        for row in pending:
            by_message.setdefault((row.conversation_id, row.sender_user, row.message_id),
                                  []).append(row)
        filed = 0
        for rows in by_message.values():
            filed += await self._report_stored(rows)
        return filed

    def report_stored_soon(self, rows: Sequence[ImageMatchRow]) -> None:
        """A resend of a stored message matched what its first send did not (a bank
        changed in between): report it from the stored message, as it was delivered."""
        self._spawn(self._report_stored_none(rows))

    async def _report_stored_none(self, rows: Sequence[ImageMatchRow]) -> None:
        await self._report_stored(rows)

    async def _report_stored(self, rows: Sequence[ImageMatchRow]) -> int:
        if self.copy_for is None or self.opener is None or self.report_sink is None:
            return 0
        first = rows[0]
        copy = await self.copy_for(MessageKey(first.conversation_id, first.sender_user,
                                              first.sender_device, first.message_id))
        if copy is None:
            log.warning("known-image match %s has no stored message to report from",
                        first.match_id)
            return 0
        try:
            message, content = self.opener(copy)
        except CoveyError as exc:
            log.warning("known-image match %s: its safety copy does not open (%s)",
                        first.match_id, exc.code)
            return 0
        await self._report(message, content, rows)
        return 1

    # --- reports and downloads -----------------------------------------------------------

    async def match_report(self, report_id: str, reporter_user: str,
                           attachments: Sequence[tuple[AttachmentRef, bytes, str, str, str,
                                                       str]],
                           participants: Sequence[str]) -> list[ImageMatchRow]:
        """A user's report: match the attachments it verified, (ref, plaintext, sender
        user, sender device, conversation, message id) each, and record every match
        against the report. Matched blobs are withheld from then on."""
        if not attachments or len(await self._loaded()) == 0:
            return []
        rows: list[ImageMatchRow] = []
        for ref, plaintext, sender, device, conversation, message_id in attachments:
            hashed = await asyncio.to_thread(hash_attachment_bytes, ref, plaintext)
            if hashed is None:
                continue
            rows += await self._match_one(hashed, USER_REPORT, sender, device, conversation,
                                          message_id, participants, report_id)
        if rows:
            await self.store.record(rows)
            log.warning("known-image match in report %s by %s: %d attachment(s)",
                        report_id, reporter_user, len(rows))
        return rows

    async def check_download(self, blob: BlobRow, user_id: str) -> None:
        """403 `attachment_withheld` for a matched blob, to all but its uploader (who has
        the image anyway, and is not told that it matched)."""
        if blob.owner_user != user_id and await self.store.withheld(blob.blob_id):
            raise Forbidden(WITHHELD_MESSAGE, code="attachment_withheld")

    # --- matching ------------------------------------------------------------------------

    async def _match(self, hashed: Sequence[HashedAttachment], origin: str, sender: str,
                     device: str, content: MessageContent, participants: Sequence[str],
                     report_id: str | None) -> list[ImageMatchRow]:
        rows: list[ImageMatchRow] = []
        for item in hashed:
            rows += await self._match_one(item, origin, sender, device,
                                          content.conversation_id, content.message_id,
                                          participants, report_id)
        return rows

    async def _match_one(self, item: HashedAttachment, origin: str, sender: str, device: str,
                         conversation: str, message_id: str, participants: Sequence[str],
                         report_id: str | None) -> list[ImageMatchRow]:
        match: BankMatch | None = await (await self._loaded()).match(item.queries.hashes)
        if match is None:
            return []
        # Every participant is looked up, so the time taken does not depend on bands.
        child = any([await self._is_child(user) for user in participants])
        return [ImageMatchRow(
            match_id="im_" + secrets.token_hex(12), origin=origin, blob_id=item.ref.blob_id,
            conversation_id=conversation, sender_user=sender, sender_device=device,
            message_id=message_id, plaintext_sha256=item.plaintext_sha256,
            query_pdq=item.queries.hashes[0].hex, quality=item.queries.quality,
            bank=match.entry.bank, entry_id=match.entry.entry_id,
            entry_pdq=match.entry.pdq.hex(), entry_meta=dict(match.entry.meta),
            distance=match.distance, variant=match.query_index, withheld=True,
            child_present=child, report_id=report_id, created_ms=now_ms())]


def matching_service(settings: Settings, repo: Repository, blobs: BlobService,
                     age: AgeService, scans: ScanQueue) -> ImageMatchService:
    """The relay's matcher over the database's banks, with the settings' distance, poll
    interval and index choice; reports rebuilt from the scan queue's stored copies."""

    def make_index() -> BankIndex:
        from covey.server.services.bank_index import BankIndex
        from covey.server.storage.banks import BankStorage

        return BankIndex(BankStorage(repo), max_distance=settings.pdq_match_distance,
                         poll_interval_s=settings.hash_bank_poll_interval_s,
                         multihash_min=settings.pdq_multihash_min)

    async def is_child(user_id: str) -> bool:
        return await age.band_of(user_id) is AgeBand.UNDER_16

    service = ImageMatchService(make_index, ImageMatchStore(repo), blobs.locate, is_child)
    # The scan queue opens a kept copy and computes its tags again the same way.
    service.opener = lambda copy: (scans._message(copy), scans._open(copy))
    service.copy_for = scans.store.copy_for
    service.copy_retention_ms = settings.safety_copy_retention_s * 1000
    return service
