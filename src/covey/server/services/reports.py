"""Reports from clients: verify every piece of franked evidence with the server's key and
the server's own blobs, deduplicate replays by fingerprint, prioritise, seal the evidence
with AES-256-GCM under a key file outside the database, and block in the same action.
The reported sender is never told. `SafetyGate` enforces blocks and suspensions."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from covey.errors import CryptoError, Forbidden, InvalidInput, NotFound
from covey.moderation import Report, ReportVerification, verify_report
from covey.moderation.evidence import EvidenceContext, EvidenceItem, ReportCategory
from covey.moderation.verify import attachments_to_fetch
from covey.protocol import b64decode, b64encode, labelled
from covey.protocol.attachments import AttachmentStatus, stored_blob_matches
from covey.protocol.content import MessageContent
from covey.protocol.ids import dm_participants
from covey.protocol.secrets import ServerFrankingKey
from covey.safety.detectors import Signal
from covey.server.services._common import Principal, load_or_create_secret_file, now_ms
from covey.server.services.blobs import BlobService
from covey.server.services.safety_events import ReportFiled, SafetyEvents, UserBlocked
from covey.server.storage.image_matches import ImageMatchRow
from covey.server.storage.reports_repo import (
    UNATTRIBUTED,
    AuditRow,
    NewReport,
    ReportRepository,
    ReportRow,
)
from covey.server.storage.repository import NewMessage
from covey.settings import Settings

if TYPE_CHECKING:
    from covey.server.services.image_matching import ImageMatchService, MatchedMessage

log = logging.getLogger(__name__)

UNVERIFIED_BAND = "unverified"
UNDER_16_BAND = "under-16"
# Reports the safety service files from detections (a handle no account can register).
SAFETY_SERVICE_REPORTER = "covey-safety"
_NONCE = 12
_READABLE = frozenset({AttachmentStatus.VERIFIED, AttachmentStatus.SIZE_MISMATCH})
# A known-image match outranks every other report (the highest other priority is 3).
IMAGE_MATCH_PRIORITY = 4
# The filer name of known-image reports, so a detector's report of the same message by
# the safety service is not taken for its replay.
IMAGE_MATCH_FILER = SAFETY_SERVICE_REPORTER + "/images"


class EvidenceVault:
    """AES-256-GCM under `<data_dir>/reports.key` (0600, created once), bound to the
    report id so a sealed row cannot be moved to another report."""

    def __init__(self, key_file: Path) -> None:
        self._aead = AESGCM(_load_or_create_key(key_file))

    def seal(self, report_id: str, payload: dict[str, Any]) -> bytes:
        nonce = os.urandom(_NONCE)
        data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        return nonce + self._aead.encrypt(nonce, data, _aad(report_id))

    def open(self, report_id: str, sealed: bytes) -> dict[str, Any]:
        try:
            plain = self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], _aad(report_id))
        except Exception as exc:
            raise CryptoError("sealed evidence does not open under the report key",
                              code="evidence_unreadable") from exc
        opened: dict[str, Any] = json.loads(plain)
        return opened

    def seal_file(self, report_id: str, name: str, data: bytes) -> bytes:
        """An escalation package file, sealed at rest (bound to its report and name)."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, _file_aad(report_id, name))

    def open_file(self, report_id: str, name: str, sealed: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:],
                                      _file_aad(report_id, name))
        except Exception as exc:
            raise CryptoError("the escalation file does not open under the report key",
                              code="evidence_unreadable") from exc


def _aad(report_id: str) -> bytes:
    return f"covey-report-evidence/v1:{report_id}".encode()


def _file_aad(report_id: str, name: str) -> bytes:
    return f"covey-escalation-file/v1:{report_id}/{name}".encode()


def _load_or_create_key(path: Path) -> bytes:
    raw = load_or_create_secret_file(path, lambda: os.urandom(32))
    if len(raw) != 32:
        raise CryptoError(f"{path} must hold exactly 32 bytes", code="bad_key_file")
    return raw


def filer_fingerprint(verification: ReportVerification, filed_by: str) -> str:
    """The stored report's replay key: one report per (reported message, who filed it).

    A person's own report keeps the verifier's fingerprint; a report the safety service
    files with the evidence as delivered to a recipient gets one of its own, so that
    recipient's report of the same message is never taken for its replay."""
    if filed_by == verification.report.reporter:
        return verification.fingerprint
    return hashlib.sha256(labelled("report-fingerprint-filed-by", {
        "fingerprint": verification.fingerprint, "filed_by": filed_by})).hexdigest()


def report_priority(category_is_child_safety: bool, reporter_band: str, *,
                    attributed: bool = True) -> int:
    """Higher first: child-safety categories (2) and under-16 reporters (1) add up. An
    unverified claim (the reported message did not verify) stays at 0 whatever it says,
    so forged reports cannot push genuine ones down the queue."""
    if not attributed:
        return 0
    return 2 * int(category_is_child_safety) + int(reporter_band == UNDER_16_BAND)


def image_match_evidence(match: ImageMatchRow) -> dict[str, Any]:
    """What a report's sealed evidence keeps of one known-image match."""
    return {"blob_id": match.blob_id, "plaintext_sha256": match.plaintext_sha256,
            "pdq": match.query_pdq, "quality": match.quality, "bank": match.bank,
            "entry_id": match.entry_id, "entry_pdq": match.entry_pdq,
            "entry_meta": match.entry_meta, "distance": match.distance,
            "variant": match.variant, "origin": match.origin}


def _evidence_item(message: NewMessage, content: MessageContent,
                   reporter: str) -> EvidenceItem:
    """A stored message as evidence seen from `reporter`'s side: with the tag the server
    issued to them, or none for a message they sent."""
    entry = next((e for e in message.entries if e.user_id == reporter), None)
    return EvidenceItem(content=content, commitment=message.commitment,
                        tag=None if entry is None else entry.franking_tag,
                        context=EvidenceContext(
                            sender_user=message.sender_user,
                            sender_device=message.sender_device,
                            recipient_user=None if entry is None else reporter,
                            conversation_id=message.conversation_id,
                            participants=tuple(message.participants),
                            server_ts_ms=message.server_ts_ms,
                            message_id=message.message_id))


class SafetyGate:
    """Blocks and suspensions, held in memory for the send path and refreshed from the
    database now and then (other processes may add some)."""

    def __init__(self) -> None:
        self.blocked: set[tuple[str, str]] = set()
        self.suspended: set[str] = set()

    def check_login(self, user_id: str) -> None:
        if user_id in self.suspended:
            raise Forbidden("this account is suspended", code="account_suspended")

    def check_send(self, sender: str, conversation_id: str,
                   participants: list[str]) -> frozenset[str]:
        """Refuse a suspended sender; return who in a direct conversation blocked the
        sender. Their devices get nothing, but the send is accepted like any other: the
        blocked sender is not told (docs/safety-policy.md, "Blocks and mutes")."""
        if sender in self.suspended:
            raise Forbidden("this account is suspended", code="account_suspended")
        if dm_participants(conversation_id) is None:
            return frozenset()
        return frozenset(other for other in participants
                         if other != sender and (other, sender) in self.blocked)


@dataclass(frozen=True)
class ReportReceipt:
    row: ReportRow
    duplicate: bool
    blocked: bool
    verification: ReportVerification


# The age service's answer for an account (`AgeService.verified_band`): honours expiry
# and whether the issuer is still trusted.
BandLookup = Callable[[str], Awaitable[str]]


class ReportService:
    def __init__(self, settings: Settings, store: ReportRepository, blobs: BlobService,
                 server_key: ServerFrankingKey, band_of: BandLookup) -> None:
        self._settings = settings
        self.store = store
        self._blobs = blobs
        self._server_key = server_key
        self._band_of = band_of
        self.vault = EvidenceVault(settings.data_dir / "reports.key")
        self.events: SafetyEvents | None = None  # set by the relay (guardian alerts, bars)
        self.gate = SafetyGate()
        # Revokes an account's tokens and sockets (set by the relay).
        self.revoke_account: Callable[[str], Awaitable[None]] | None = None
        # Known-image matching of reported attachments (set by the relay).
        self.image_matcher: ImageMatchService | None = None

    async def suspend_account(self, user_id: str) -> None:
        """Apply a recorded suspension here at once: refuse, revoke, disconnect."""
        self.gate.suspended.add(user_id)
        if self.revoke_account is not None:
            await self.revoke_account(user_id)

    async def refresh_gate(self) -> None:
        self.gate.blocked = await self.store.blocks()
        suspended = await self.store.suspended()
        added = suspended - self.gate.suspended
        self.gate.suspended = suspended
        for user_id in added:  # suspended by another process: end the sessions held here
            if self.revoke_account is not None:
                await self.revoke_account(user_id)

    async def gate_loop(self, interval_s: float = 2.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh_gate()
            except Exception:
                log.exception("refreshing blocks and suspensions failed")

    async def fetch_blobs(self, report: Report) -> dict[str, bytes]:
        """The server's own stored ciphertext for the attachments of the messages whose
        commitment and tag verify, and only where the blob table has the committed hash:
        a report never makes the server read other people's blobs."""
        found: dict[str, bytes] = {}
        for ref in attachments_to_fetch(report, self._server_key):
            # Only a blob its conversation declared: what the reporter could fetch.
            conversations = sorted({
                item.context.conversation_id for item in report.messages
                if any(a.blob_id == ref.blob_id for a in item.content.attachments)})
            try:
                path, row = await self._blobs.locate_declared(ref.blob_id, conversations)
            except NotFound:
                continue
            # The committed hash must be the stored blob's: only someone who had the
            # ciphertext knows it. A wrong committed size is the verifier's to report.
            if stored_blob_matches(ref, row.sha256, row.size) in _READABLE:
                found[ref.blob_id] = await asyncio.to_thread(path.read_bytes)
        return found

    async def submit(self, principal: Principal, report: Report, *,
                     block: bool) -> ReportReceipt:
        if report.reporter != principal.user_id:
            raise Forbidden("the reporter must be the authenticated user",
                            code="reporter_mismatch")
        band = str(await self._band_of(principal.user_id))
        stored, created, verification = await self._file(
            report, reporter=principal.user_id, reporter_band=band,
            category_is_child_safety=report.category.is_child_safety,
            audit=(f"user:{principal.user_id}", "report_submitted"))
        claimed_sender = verification.reported.item.context.sender_user
        if created:
            await self._match_images(stored, verification)
        if created and self.events is not None:
            # An unverified claim names nobody: it counts toward no bar on anyone.
            await self.events.emit(ReportFiled(principal.user_id, stored.attributed_user,
                                               stored.category, stored.created_ms,
                                               claimed_user=claimed_sender))
        # Blocking is the reporter's own choice (they may block anyone), so it follows
        # the sender they saw even when the evidence does not verify.
        if block and claimed_sender != principal.user_id:
            await self.block(principal, claimed_sender)
        return ReportReceipt(stored, not created, block, verification)

    async def file_detection(self, signal: Signal, message: NewMessage,
                             content: MessageContent,
                             earlier: Sequence[tuple[NewMessage, MessageContent]] = ()
                             ) -> None:
        """A detector flagged a safeguarded message: queue it for moderators as a report
        by the safety service, with the message as franked evidence (its commitment and
        the tag the server gave the first recipient), verified like any report; `earlier`
        messages the signal names (a conversation detector's evidence) go with it as its
        context, each with the tag issued to that recipient (none for its own messages)."""
        entry = next((e for e in message.entries if e.user_id != message.sender_user), None)
        if entry is None:
            return
        items = [_evidence_item(m, c, entry.user_id) for m, c in earlier]
        item = _evidence_item(message, content, entry.user_id)
        category = ReportCategory(signal.category.value)
        # The evidence is the message as delivered to one recipient (whose tag it carries),
        # so the report is checked from that recipient's side; the row names the safety
        # service as the one who filed it, with a fingerprint of its own, so that
        # recipient's own report of the message is stored too (`filer_fingerprint`).
        report = Report(reporter=entry.user_id, reported_message_id=message.message_id,
                        reported_sender_user=message.sender_user,
                        reported_conversation_id=message.conversation_id,
                        category=category, comment=f"automatic detection by the safety "
                        f"service: {signal.detector} {signal.code} "
                        f"({signal.severity.name.lower()}); evidence as delivered to "
                        f"{entry.user_id}, who did not file this report",
                        messages=(*items[-10:], item))
        await self._file(
            report, reporter=SAFETY_SERVICE_REPORTER, reporter_band=SAFETY_SERVICE_REPORTER,
            category_is_child_safety=category.is_child_safety, priority_band=UNDER_16_BAND,
            audit=(SAFETY_SERVICE_REPORTER, "detection_reported"),
            extra={"signal": signal.to_json()},
            detail=f"{signal.detector} {signal.code} {signal.severity.name.lower()}")

    async def _match_images(self, stored: ReportRow,
                            verification: ReportVerification) -> None:
        """A person's report runs the relay's known-image matching over the attachments
        it verified; a match is recorded against the report (and counted)."""
        if self.image_matcher is None:
            return
        attachments = [(check.ref, check.plaintext, i.item.context.sender_user,
                        i.item.context.sender_device, i.item.context.conversation_id,
                        i.item.context.message_id)
                       for i in verification.verified_items
                       for check in i.verified_attachments if check.plaintext is not None]
        if not attachments:
            return
        try:
            await self.image_matcher.match_report(
                stored.report_id, stored.reporter, attachments,
                verification.reported.item.context.participants)
        except Exception:  # the report itself is stored; a matching failure is logged
            log.exception("known-image matching of report %s failed", stored.report_id)

    async def file_image_match(self, matched: MatchedMessage) -> str:
        """The relay matched attachments of a safeguarded message against the hash banks:
        file a prioritised report by the safety service with the message as franked
        evidence as addressed to `matched.recipient` (a child when one takes part), the
        messages that recipient received just before, its blobs, and the bank entry and
        distance of each match. Returns the report id (a replay: the stored one)."""
        message, matches = matched.message, matched.matches
        items = []
        for earlier, content in (*matched.preceding, (message, matched.content)):
            entry = next((e for e in earlier.entries if e.user_id == matched.recipient), None)
            if entry is None:
                continue
            items.append(EvidenceItem(
                content=content, commitment=earlier.commitment, tag=entry.franking_tag,
                context=EvidenceContext(
                    sender_user=earlier.sender_user, sender_device=earlier.sender_device,
                    recipient_user=entry.user_id, conversation_id=earlier.conversation_id,
                    participants=tuple(earlier.participants),
                    server_ts_ms=earlier.server_ts_ms, message_id=earlier.message_id)))
        if not items or items[-1].message_id != message.message_id:
            raise InvalidInput("the matched message has no recipient to report it as",
                               code="no_recipient")
        entry_user = matched.recipient
        first = matches[0]
        report = Report(
            reporter=entry_user, reported_message_id=message.message_id,
            reported_sender_user=message.sender_user,
            reported_conversation_id=message.conversation_id,
            category=ReportCategory.CHILD_SEXUAL_EXPLOITATION_IMAGERY,
            comment=f"automatic known-image match by the safety service: {len(matches)} "
            f"attachment(s) matched bank {first.bank} entry {first.entry_id} at PDQ distance "
            f"{first.distance}; withheld before delivery; evidence as addressed to "
            f"{entry_user}, who did not file this report", messages=tuple(items))
        stored, _created, _verification = await self._file(
            report, reporter=SAFETY_SERVICE_REPORTER, reporter_band=SAFETY_SERVICE_REPORTER,
            category_is_child_safety=True, priority=IMAGE_MATCH_PRIORITY,
            filed_as=IMAGE_MATCH_FILER, audit=(SAFETY_SERVICE_REPORTER, "image_match_reported"),
            extra={"image_matches": [image_match_evidence(m) for m in matches]},
            detail=f"known image: bank {first.bank} entry {first.entry_id} distance "
                   f"{first.distance}")
        return stored.report_id

    async def _file(self, report: Report, *, reporter: str, reporter_band: str,
                    category_is_child_safety: bool, audit: tuple[str, str],
                    priority_band: str | None = None, extra: dict[str, Any] | None = None,
                    detail: str | None = None, priority: int | None = None,
                    filed_as: str | None = None,
                    ) -> tuple[ReportRow, bool, ReportVerification]:
        """Verify the evidence against the server's own blobs and key, seal it, and store
        the report (a replay lands on the stored one: `created` is False).

        Only a verified reported message attributes the report to its sender and earns
        priority; otherwise it is stored as an unverified claim against nobody (the
        claimed sender stays inside the sealed evidence, never in `reported_user`)."""
        blobs = await self.fetch_blobs(report)
        verification = await asyncio.to_thread(verify_report, report, self._server_key,
                                                blobs=blobs)
        attributed = verification.reported.verified
        now = now_ms()
        report_id = "rep_" + secrets.token_hex(12)
        row = ReportRow(
            report_id=report_id,
            fingerprint=filer_fingerprint(verification, filed_as or reporter),
            reporter=reporter,
            reported_user=(verification.reported.item.context.sender_user if attributed
                           else UNATTRIBUTED),
            category=report.category.value,
            priority=(priority if priority is not None and attributed else
                      report_priority(category_is_child_safety,
                                      priority_band or reporter_band, attributed=attributed)),
            reporter_band=reporter_band,
            policy_mode=self._settings.safety_mode, status="open",
            verified_count=len(verification.verified_items),
            total_count=len(verification.items),
            reported_verified=verification.reported.verified, created_ms=now,
            actioned_ms=None,
            preserve_until_ms=now + self._settings.evidence_retention_s * 1000,
            purged=False)
        sealed = self.vault.seal(report_id, {
            "report": report.model_dump(mode="json"),
            "blobs": {k: b64encode(v) for k, v in blobs.items()}, **(extra or {})})
        actor, action = audit
        stored, created = await self.store.insert_report(NewReport(row, sealed), AuditRow(
            now, actor, action, report_id, detail or (
                f"category {row.category}, {row.verified_count}/{row.total_count} verified")))
        return stored, created, verification

    async def block(self, principal: Principal, user_id: str) -> None:
        if user_id == principal.user_id:
            raise InvalidInput("you cannot block yourself", details={"field": "user_id"})
        at = now_ms()
        await self.store.add_block(principal.user_id, user_id, at)
        self.gate.blocked.add((principal.user_id, user_id))
        if self.events is not None:
            await self.events.emit(UserBlocked(principal.user_id, user_id, at))

    async def open_evidence(self, report_id: str) -> tuple[Report, dict[str, bytes]] | None:
        """The stored report and blobs, decrypted; None once purged."""
        sealed = await self.store.sealed_evidence(report_id)
        if sealed is None:
            return None
        payload = self.vault.open(report_id, sealed)
        report = Report.model_validate(payload["report"])
        blobs = {k: b64decode(v) for k, v in payload["blobs"].items()}
        return report, blobs

    async def detection_signal(self, report_id: str) -> dict[str, Any] | None:
        """The detector signal a safety-service report was filed for (None otherwise)."""
        sealed = await self.store.sealed_evidence(report_id)
        if sealed is None:
            return None
        signal = self.vault.open(report_id, sealed).get("signal")
        return signal if isinstance(signal, dict) else None

    async def reverify(self, report_id: str) -> ReportVerification | None:
        opened = await self.open_evidence(report_id)
        if opened is None:
            return None
        report, blobs = opened
        return await asyncio.to_thread(verify_report, report, self._server_key, blobs=blobs)

    async def purge_loop(self) -> None:
        """Delete evidence (and escalation files) past its preservation period."""
        interval = max(0.5, self._settings.evidence_purge_interval_s)
        while True:
            try:
                await self.purge_once()
            except Exception:
                log.exception("evidence purge failed")
            await asyncio.sleep(interval)

    async def purge_once(self) -> list[str]:
        purged = await self.store.purge_evidence(now_ms())
        if purged:
            for directory in await self.store.escalation_directories(purged):
                await asyncio.to_thread(shutil.rmtree, directory, True)
            log.info("purged the evidence of %d reports", len(purged))
        return purged
