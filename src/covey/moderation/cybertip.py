"""CyberTipline-style XML for an escalated report, using the element names of NCMEC's
ESP reporting schema: one <report> document and one <fileDetails> per attachment.

Only verified evidence goes in. The subset emitted is described by `cybertip.xsd`
beside this module (validated in the tests).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from covey.errors import InvalidInput
from covey.moderation._time import iso_utc
from covey.moderation.evidence import ReportCategory
from covey.moderation.verify import ReportVerification

CHILD_PORNOGRAPHY = "Child Pornography (possession, manufacture, and distribution)"
ONLINE_ENTICEMENT = "Online Enticement of Children for Sexual Acts"
INCIDENT_TYPES: Mapping[ReportCategory, str] = {
    ReportCategory.CHILD_SEXUAL_EXPLOITATION_IMAGERY: CHILD_PORNOGRAPHY,
    ReportCategory.GROOMING_OR_ENTICEMENT: ONLINE_ENTICEMENT,
    ReportCategory.SEXTORTION: ONLINE_ENTICEMENT,
}
IndustryClassification = Literal["A1", "A2", "B1", "B2"]

# Characters XML 1.0 cannot carry (controls other than tab, LF, CR; lone surrogates).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class EspContact:
    """The platform's person responsible for the report (NCMEC's `reportingPerson`)."""

    first_name: str
    last_name: str
    email: str


@dataclass(frozen=True)
class KnownVictim:
    """A participant known to be a child, e.g. from a verified under-16 age proof."""

    user_id: str
    note: str


@dataclass(frozen=True)
class FileMatch:
    """A known-image match of one attachment: its PDQ hash, the bank entry it matched and
    how far, and whether anyone at the platform looked at the image (a hash-only match:
    no, and `fileViewedByEsp` says false)."""

    pdq: str
    bank: str
    entry_id: int
    entry_pdq: str
    distance: int
    meta: Mapping[str, object]
    viewed: bool = False


@dataclass(frozen=True)
class CyberTipDocuments:
    """The XML documents for one escalation, UTF-8 with an XML declaration."""

    report: bytes
    file_details: tuple[bytes, ...]


def cybertip_schema() -> str:
    """The XSD for the subset Covey emits."""
    return resources.files("covey.moderation").joinpath("cybertip.xsd").read_text("utf-8")


def build_cybertip(verification: ReportVerification, *, reporting_person: EspContact,
                   platform: str = "Covey", victims: Sequence[KnownVictim] = (),
                   bundle_id: str | None = None, report_id: int | None = None,
                   file_viewed_by_esp: bool = False,
                   classifications: Mapping[str, IndustryClassification] | None = None,
                   file_matches: Mapping[str, FileMatch] | None = None,
                   ) -> CyberTipDocuments:
    """Build the <report> and <fileDetails> documents from a verified report.

    `classifications` maps an attachment's plaintext SHA-256 to the moderator's
    industry classification; `file_matches` to its known-image match (the record then
    carries the PDQ hash beside the SHA-256, the bank entry's metadata, and
    `fileViewedByEsp` from the match). Only child-safety categories are reportable."""
    report = verification.report
    incident_type = INCIDENT_TYPES.get(report.category)
    if incident_type is None:
        raise InvalidInput(f"category {report.category.value} is not reportable to the "
                           "CyberTipline", code="not_reportable")
    reported = verification.reported
    if not reported.verified:
        raise InvalidInput("the reported message did not verify and cannot be escalated",
                           code="reported_unverified")
    ctx = reported.item.context
    root = ET.Element("report")

    summary = _sub(root, "incidentSummary")
    _sub(summary, "incidentType", incident_type)
    _sub(summary, "platform", platform)
    if report.category is ReportCategory.SEXTORTION:
        _sub(_sub(summary, "reportAnnotations"), "sextortion")
    _sub(summary, "incidentDateTime", iso_utc(ctx.server_ts_ms))

    chat = _sub(_sub(root, "internetDetails"), "chatImIncident")
    _sub(chat, "chatClient", platform)
    _sub(chat, "chatRoomName", ctx.conversation_id)
    _sub(chat, "content", _transcript(verification))
    _sub(chat, "additionalInfo",
         f"{len(verification.verified_items)} of {len(verification.items)} messages "
         "submitted by the recipient verified by message franking (sender commitment and "
         "platform tag). Unverified messages are omitted.")

    person = _sub(_sub(root, "reporter"), "reportingPerson")
    _sub(person, "firstName", reporting_person.first_name)
    _sub(person, "lastName", reporting_person.last_name)
    _sub(person, "email", reporting_person.email)

    suspect = _sub(root, "personOrUserReported")
    _sub(suspect, "espIdentifier", ctx.sender_user)
    _sub(suspect, "espService", platform)
    _sub(suspect, "screenName", ctx.sender_user)
    devices = sorted({i.item.context.sender_device for i in verification.verified_items
                      if i.item.context.sender_user == ctx.sender_user})
    for device in devices:
        element = _sub(suspect, "deviceId")
        _sub(element, "idType", f"{platform} device id")
        _sub(element, "idValue", device)

    for victim in victims:
        element = _sub(root, "victim")
        _sub(element, "victimPerson")
        _sub(element, "espIdentifier", victim.user_id)
        _sub(element, "espService", platform)
        _sub(element, "screenName", victim.user_id)
        _sub(element, "additionalInfo", victim.note)

    info = [f"{platform} report fingerprint: {verification.fingerprint}",
            f"Category: {report.category.value}",
            f"Reported message id: {report.reported_message_id}"]
    if bundle_id is not None:
        info.append(f"Signed evidence bundle: {bundle_id}")
    if report.comment:
        info.append(f"Reporter's comment: {report.comment}")
    _sub(root, "additionalInfo", "\n".join(info))

    files = []
    for item in verification.verified_items:
        for check in item.verified_attachments:
            digest = check.plaintext_sha256
            assert digest is not None
            match = (file_matches or {}).get(digest)
            files.append(_file_details(
                check.ref.name, digest, check.ref.blob_id, check.ref.sha256,
                item.item.message_id, report_id=report_id,
                viewed=file_viewed_by_esp if match is None else match.viewed,
                classification=(classifications or {}).get(digest), match=match))
    return CyberTipDocuments(_bytes(root), tuple(files))


def _file_details(name: str, digest: str, blob_id: str, ciphertext_sha256: str,
                  message_id: str, *, report_id: int | None, viewed: bool,
                  classification: IndustryClassification | None,
                  match: FileMatch | None = None) -> bytes:
    root = ET.Element("fileDetails")
    if report_id is not None:
        _sub(root, "reportId", str(report_id))
    if name:
        _sub(root, "originalFileName", name)
    _sub(root, "fileViewedByEsp", "true" if viewed else "false")
    if classification is not None:
        _sub(root, "industryClassification", classification)
    _sub(root, "originalFileHash", digest).set("hashType", "SHA256")
    pairs = [("messageId", message_id), ("blobId", blob_id),
             ("ciphertextSha256", ciphertext_sha256)]
    if match is not None:
        _sub(root, "originalFileHash", match.pdq).set("hashType", "PDQ")
        pairs += [("matchType", "hash match (PDQ perceptual hash against a hash bank)"),
                  ("hashBank", match.bank), ("hashBankEntryId", str(match.entry_id)),
                  ("hashBankEntryPdq", match.entry_pdq),
                  ("pdqHammingDistance", str(match.distance))]
        pairs += [(f"hashBankEntryMeta.{key}", _meta_text(value))
                  for key, value in sorted(match.meta.items())]
    details = _sub(root, "details")
    for key, value in pairs:
        pair = _sub(details, "nameValuePair")
        _sub(pair, "name", key)
        _sub(pair, "value", value)
    return _bytes(root)


def _meta_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _transcript(verification: ReportVerification) -> str:
    lines = []
    for item in verification.verified_items:
        ctx, content = item.item.context, item.item.content
        text = content.text
        for check in item.verified_attachments:
            text += f" [attachment {check.ref.name or check.ref.blob_id}, SHA-256 " \
                    f"{check.plaintext_sha256}]"
        lines.append(f"[{iso_utc(ctx.server_ts_ms)}] {ctx.sender_user}: {text.strip()}")
    return "\n".join(lines)


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = _NOT_XML.sub("\ufffd", text)
    return element


def _bytes(root: ET.Element) -> bytes:
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"

