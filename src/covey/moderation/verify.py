"""Verifies a report's evidence with the server's franking key: pure, no I/O.

Each message gets a status and the reasons behind it; a message is `verified` when its
commitment opens, its tag is the server's for exactly its context and the context fits
the report. Each attachment gets its own status (`verified`, `missing`, `hash_mismatch`,
`size_mismatch`, `undecryptable`) and never fails its message: what a client shows (the
text, and only attachments that check out) is what a report of it verifies. A report in
which no message verifies is rejected.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from covey.errors import CoveyError, InvalidInput
from covey.moderation.evidence import EvidenceItem, Report
from covey.protocol import labelled
from covey.protocol.attachments import AttachmentStatus, OpenedAttachment, open_attachment
from covey.protocol.content import AttachmentRef
from covey.protocol.franking import opens, tag_is_valid
from covey.protocol.ids import MessageKey, dm_participants
from covey.protocol.secrets import FrankingCommitment, FrankingTag, ServerFrankingKey

VERIFIER_VERSION = "covey.moderation.verify/1"


class ItemStatus(StrEnum):
    """A message's verification outcome; anything but `verified` is not evidence."""

    VERIFIED = "verified"
    COMMITMENT_MISMATCH = "commitment_mismatch"
    TAG_INVALID = "tag_invalid"
    UNATTESTED = "unattested"
    CONTEXT_MISMATCH = "context_mismatch"
    SPLICED = "spliced"
    DUPLICATE = "duplicate"


# Most severe first: an item's status is its most severe finding.
_SEVERITY = (
    ItemStatus.COMMITMENT_MISMATCH,
    ItemStatus.TAG_INVALID,
    ItemStatus.UNATTESTED,
    ItemStatus.CONTEXT_MISMATCH,
    ItemStatus.SPLICED,
    ItemStatus.DUPLICATE,
)


@dataclass(frozen=True)
class Finding:
    """One reason an item is not verified."""

    code: ItemStatus
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code.value, "detail": self.detail}


@dataclass(frozen=True)
class AttachmentCheck:
    """One committed attachment: is the server's stored blob exactly what it commits?
    Only a verified attachment carries its plaintext (and is evidence)."""

    ref: AttachmentRef
    status: AttachmentStatus
    detail: str = ""
    plaintext: bytes | None = field(default=None, repr=False)

    @classmethod
    def of(cls, opened: OpenedAttachment) -> AttachmentCheck:
        return cls(opened.ref, opened.status, opened.detail, opened.plaintext)

    @property
    def verified(self) -> bool:
        return self.status is AttachmentStatus.VERIFIED

    @property
    def plaintext_sha256(self) -> str | None:
        return None if self.plaintext is None else hashlib.sha256(self.plaintext).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"blob_id": self.ref.blob_id, "ciphertext_sha256": self.ref.sha256,
                "plaintext_sha256": self.plaintext_sha256, "status": self.status.value,
                "detail": self.detail}


@dataclass(frozen=True)
class ItemVerification:
    """One message's outcome, with every finding (empty when verified)."""

    item: EvidenceItem
    findings: tuple[Finding, ...]
    attachments: tuple[AttachmentCheck, ...]
    is_reported: bool

    @property
    def status(self) -> ItemStatus:
        codes = {f.code for f in self.findings}
        return next((s for s in _SEVERITY if s in codes), ItemStatus.VERIFIED)

    @property
    def verified(self) -> bool:
        return not self.findings

    @property
    def verified_attachments(self) -> tuple[AttachmentCheck, ...]:
        """The attachments that are evidence: only those of a verified message whose
        blob matched its reference and decrypted."""
        if not self.verified:
            return ()
        return tuple(a for a in self.attachments if a.verified)

    def to_json(self) -> dict[str, Any]:
        ctx = self.item.context
        return {"message_id": ctx.message_id, "reported": self.is_reported,
                "sender_user": ctx.sender_user, "sender_device": ctx.sender_device,
                "server_ts_ms": ctx.server_ts_ms, "status": self.status.value,
                "findings": [f.to_json() for f in self.findings],
                "attachments": [a.to_json() for a in self.attachments]}


@dataclass(frozen=True)
class ReportVerification:
    """A verified report: items in server-time order, and its replay fingerprint."""

    report: Report
    fingerprint: str
    items: tuple[ItemVerification, ...]
    submitted_in_order: bool

    @property
    def reported(self) -> ItemVerification:
        return next(i for i in self.items if i.is_reported)

    @property
    def verified_items(self) -> tuple[ItemVerification, ...]:
        return tuple(i for i in self.items if i.verified)

    @property
    def all_verified(self) -> bool:
        return all(i.verified for i in self.items)

    def transcript(self) -> dict[str, Any]:
        """What was checked and what came out, as canonical-JSON-ready data."""
        report = self.report
        return {
            "verifier": VERIFIER_VERSION,
            "fingerprint": self.fingerprint,
            "report": {"reporter": report.reporter, "category": report.category.value,
                       "reported_message_id": report.reported_message_id,
                       "reported_sender_user": self.reported.item.context.sender_user,
                       "reported_conversation_id":
                           self.reported.item.context.conversation_id,
                       "comment": report.comment},
            "checks": ["commitment opens under the revealed franking key",
                       "server tag valid for the exact tag context",
                       "context consistent with the report",
                       "each attachment on its own: ciphertext matches committed SHA-256 "
                       "and size, and decrypts"],
            "submitted_in_order": self.submitted_in_order,
            "summary": {"total": len(self.items), "verified": len(self.verified_items),
                        "reported_verified": self.reported.verified},
            "items": [i.to_json() for i in self.items],
        }


class ReportUnverifiable(CoveyError):
    """No piece of a report's evidence verifies: the report is refused."""

    code = "report_unverifiable"
    status = 422


def report_fingerprint(report: Report) -> str:
    """SHA-256 (hex) of the reported message's tag context, as seen by the reporter.

    Independent of category, comment and the surrounding messages, so the same message
    reported twice by the same user gives the same fingerprint."""
    reported = _find_reported(report)
    ctx = reported.context
    return hashlib.sha256(labelled("report-fingerprint", {
        "sender_user": ctx.sender_user, "sender_device": ctx.sender_device,
        "recipient_user": report.reporter, "conversation_id": ctx.conversation_id,
        "server_ts_ms": ctx.server_ts_ms, "message_id": ctx.message_id,
    })).hexdigest()


def verify_report(report: Report, server_key: ServerFrankingKey, *,
                  blobs: Mapping[str, bytes] | None = None) -> ReportVerification:
    """Check every item of `report`. `blobs` maps blob id to the stored ciphertext the
    moderator side fetched. Raises `ReportUnverifiable` when no item verifies and
    `InvalidInput` when the reported message is not in the report."""
    reported = _find_reported(report)
    fetched = blobs or {}
    seen: set[MessageKey] = set()
    results: list[tuple[int, ItemVerification]] = []
    for index, item in enumerate(report.messages):
        is_reported = item is reported
        findings = _item_findings(report, item, reported, server_key, seen)
        # Attachments never fail their message (the text verifies on its commitment and
        # tag alone); each gets its own status. A message that does not verify reveals
        # nothing, so its blobs are neither fetched nor opened.
        checks = tuple(AttachmentCheck.of(open_attachment(fetched.get(ref.blob_id), ref))
                       if not findings else
                       AttachmentCheck(ref, AttachmentStatus.NOT_CHECKED,
                                       "the message does not verify")
                       for ref in item.content.attachments)
        results.append((index, ItemVerification(item, tuple(findings), checks, is_reported)))
    ordered = sorted(results, key=lambda r: (r[1].item.context.server_ts_ms, r[0]))
    outcome = ReportVerification(
        report=report, fingerprint=report_fingerprint(report),
        items=tuple(r[1] for r in ordered),
        submitted_in_order=[r[0] for r in ordered] == list(range(len(ordered))))
    if not outcome.verified_items:
        raise ReportUnverifiable(
            "no evidence in this report verifies",
            details={"items": [{"message_id": i.item.message_id, "status": i.status.value}
                               for i in outcome.items]})
    return outcome


def attachments_to_fetch(report: Report, server_key: ServerFrankingKey) -> list[AttachmentRef]:
    """The attachment references of the messages that verify (commitment, tag, context):
    the only blobs a report may make the server read. Raises like `verify_report` when
    the reported message is not in the report."""
    reported = _find_reported(report)
    seen: set[MessageKey] = set()
    refs: dict[str, AttachmentRef] = {}
    for item in report.messages:
        if not _item_findings(report, item, reported, server_key, seen):
            for ref in item.content.attachments:
                refs.setdefault(ref.blob_id, ref)
    return list(refs.values())


def _item_findings(report: Report, item: EvidenceItem, reported: EvidenceItem,
                   server_key: ServerFrankingKey, seen: set[MessageKey]) -> list[Finding]:
    """Everything wrong with one message on its own and in the report (adds it to
    `seen`, so a second copy of the same message is a duplicate)."""
    findings = [*_check_franking(item, server_key),
                *_check_context(item, report.reporter),
                *_check_position(item, reported, item is reported, report.reporter)]
    if item.key in seen:
        findings.append(Finding(ItemStatus.DUPLICATE,
                                "this message appears earlier in the report"))
    seen.add(item.key)
    return findings


def _find_reported(report: Report) -> EvidenceItem:
    """The reported message, by its full key when the report names one (message ids are
    unique per sender device only); an id alone must name exactly one item."""
    found = [item for item in report.messages if report.names(item)]
    if not found:
        raise InvalidInput("the reported message is not among the evidence",
                           code="reported_message_missing")
    if len({item.key for item in found}) > 1:
        raise InvalidInput("several messages of this report carry the reported message id: "
                           "name its sender and conversation too",
                           code="reported_message_ambiguous")
    return found[0]


def _check_franking(item: EvidenceItem, server_key: ServerFrankingKey) -> list[Finding]:
    findings: list[Finding] = []
    commitment = FrankingCommitment.from_b64(item.commitment)
    try:
        fk = item.content.fk()
    except InvalidInput:
        findings.append(Finding(ItemStatus.COMMITMENT_MISMATCH, "franking key is malformed"))
    else:
        if not opens(commitment, fk, item.content.committed_part(), item.context.franking()):
            findings.append(Finding(ItemStatus.COMMITMENT_MISMATCH,
                                    "content and context do not open the commitment under "
                                    "the revealed franking key"))
    tag_context = item.context.tag()
    if item.tag is None or tag_context is None:
        findings.append(Finding(ItemStatus.UNATTESTED,
                                "no server tag: the server never attested this message to "
                                "the reporter"))
    elif not tag_is_valid(server_key, FrankingTag.from_b64(item.tag), commitment, tag_context):
        findings.append(Finding(ItemStatus.TAG_INVALID,
                                "the tag is not the server's for this commitment, sender, "
                                "recipient, conversation, time and message id"))
    return findings


def _check_context(item: EvidenceItem, reporter: str) -> list[Finding]:
    """The item on its own: content, context and reporter must agree."""
    content, ctx = item.content, item.context
    problems: list[str] = []
    if content.message_id != ctx.message_id:
        problems.append("content message id differs from the context's")
    if content.conversation_id != ctx.conversation_id:
        problems.append("content conversation differs from the context's")
    if content.kind == "room_key":
        problems.append("room keys are not reportable messages")
    participants = set(ctx.participants)
    pair = dm_participants(ctx.conversation_id)
    if pair is not None and set(pair) != participants:
        problems.append("participants differ from the direct conversation's two users")
    if ctx.sender_user not in participants:
        problems.append("the sender is not a participant")
    if reporter not in participants:
        problems.append("the reporter is not a participant")
    if ctx.recipient_user is not None and ctx.recipient_user != reporter:
        problems.append(f"the tag was issued to {ctx.recipient_user}, not to the reporter")
    return [Finding(ItemStatus.CONTEXT_MISMATCH, p) for p in problems]


def _check_position(item: EvidenceItem, reported: EvidenceItem, is_reported: bool,
                    reporter: str) -> list[Finding]:
    """The item relative to the reported message: same conversation, not after it."""
    ctx, anchor = item.context, reported.context
    if is_reported:
        if ctx.sender_user == reporter:
            return [Finding(ItemStatus.CONTEXT_MISMATCH,
                            "the reported message was sent by the reporter")]
        return []
    findings: list[Finding] = []
    if ctx.conversation_id != anchor.conversation_id:
        findings.append(Finding(ItemStatus.SPLICED,
                                f"from conversation {ctx.conversation_id}, not the reported "
                                f"message's {anchor.conversation_id}"))
    if ctx.server_ts_ms > anchor.server_ts_ms:
        findings.append(Finding(ItemStatus.SPLICED,
                                "accepted by the server after the reported message"))
    return findings
