"""What a known-image match adds, without a server: the CyberTipline `fileDetails` record
(PDQ beside SHA-256, the bank entry's metadata, `fileViewedByEsp`) valid against the XSD
and refused by it when malformed; match counts in the transparency report; and which
decrypted attachments are hashed at all (images of PDQ quality 50 or more)."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest
import xmlschema
from xmlschema.validators.exceptions import XMLSchemaValidationError

from covey.moderation import FileMatch, ReportCategory, build_cybertip, cybertip_schema
from covey.moderation.transparency import ImageMatchCountRow, transparency_counts
from covey.protocol.content import AttachmentRef
from covey.safety.policy import PolicyMode
from covey.safety.visibility import IMAGE_HANDLING
from covey.server.services.image_matching import hash_attachment_bytes
from tests.unit._pdq_images import low_contrast, png, scene
from tests.unit.test_moderation_cybertip import CONTACT, IMAGE, _verification

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
ENTRY = "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22"
REF = AttachmentRef(blob_id="blob_" + "b" * 22, key="k" * 43 + "=", sha256="0" * 64, size=1)


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(cybertip_schema())


def _file_record(viewed: bool, meta: dict[str, object]) -> bytes:
    verification = _verification(ReportCategory.CHILD_SEXUAL_EXPLOITATION_IMAGERY)
    digest = hashlib.sha256(IMAGE).hexdigest()
    docs = build_cybertip(verification, reporting_person=CONTACT, file_matches={
        digest: FileMatch(pdq=PDQ, bank="ncmec-test", entry_id=42, entry_pdq=ENTRY,
                          distance=2, meta=meta, viewed=viewed)})
    (record,) = docs.file_details
    return record


def test_a_hash_only_match_carries_pdq_sha256_and_the_entry(
        schema: xmlschema.XMLSchema) -> None:
    record = _file_record(False, {"text": "list entry", "labels": ["a", "b"]})
    schema.validate(record.decode())
    root = ET.fromstring(record)
    hashes = {e.get("hashType"): e.text for e in root.findall("originalFileHash")}
    assert hashes == {"SHA256": hashlib.sha256(IMAGE).hexdigest(), "PDQ": PDQ}
    assert root.findtext("fileViewedByEsp") == "false"
    pairs = {p.findtext("name"): p.findtext("value")
             for p in root.findall("details/nameValuePair")}
    assert pairs["hashBank"] == "ncmec-test" and pairs["hashBankEntryId"] == "42"
    assert pairs["hashBankEntryPdq"] == ENTRY and pairs["pdqHammingDistance"] == "2"
    assert pairs["hashBankEntryMeta.text"] == "list entry"
    assert pairs["hashBankEntryMeta.labels"] == '["a", "b"]'


def test_a_viewed_match_says_so(schema: xmlschema.XMLSchema) -> None:
    record = _file_record(True, {})
    schema.validate(record.decode())
    assert ET.fromstring(record).findtext("fileViewedByEsp") == "true"


@pytest.mark.parametrize("bad", [
    f'<originalFileHash hashType="MD5">{PDQ}</originalFileHash>',  # unknown hash type
    '<originalFileHash hashType="PDQ">f8f8</originalFileHash>',  # not 256 bits
    f'<originalFileHash hashType="PDQ">{PDQ.upper()}</originalFileHash>',  # not lower hex
])
def test_the_schema_refuses_a_malformed_pdq_record(schema: xmlschema.XMLSchema,
                                                   bad: str) -> None:
    text = _file_record(False, {}).decode()
    tampered = text.replace(f'<originalFileHash hashType="PDQ">{PDQ}</originalFileHash>', bad)
    assert tampered != text
    with pytest.raises(XMLSchemaValidationError):
        schema.validate(tampered)


def test_three_file_hashes_are_refused(schema: xmlschema.XMLSchema) -> None:
    text = _file_record(False, {}).decode()
    line = f'<originalFileHash hashType="PDQ">{PDQ}</originalFileHash>'
    with pytest.raises(XMLSchemaValidationError):
        schema.validate(text.replace(line, line + line))


def test_transparency_counts_every_match() -> None:
    day = 1_780_000_000_000
    counts = transparency_counts([], [
        ImageMatchCountRow(day, "relay", "known", True),
        ImageMatchCountRow(day, "user_report", "known", True),
        ImageMatchCountRow(day + 40 * 86_400_000, "relay", "other", True)])
    images = counts["image_matches"]
    assert images["total"] == 3 and images["withheld"] == 3
    assert images["by_origin"] == {"relay": 2, "user_report": 1}
    assert images["by_bank"] == {"known": 2, "other": 1}
    assert sum(images["by_month"].values()) == 3 and len(images["by_month"]) == 2
    assert transparency_counts([])["image_matches"]["total"] == 0


def test_only_usable_images_are_hashed() -> None:
    image = png(scene(3))
    hashed = hash_attachment_bytes(REF, image)
    assert hashed is not None and hashed.queries.usable
    assert len(hashed.queries.hashes) == 8
    assert hashed.plaintext_sha256 == hashlib.sha256(image).hexdigest()
    assert hash_attachment_bytes(REF, b"%PDF-1.4 not an image") is None
    assert hash_attachment_bytes(REF, png(low_contrast(scene(3)))) is None  # quality < 50


def test_the_visibility_audit_says_what_each_mode_does_with_images() -> None:
    assert set(IMAGE_HANDLING) == set(PolicyMode)
    on_device = IMAGE_HANDLING[PolicyMode.ON_DEVICE]
    assert "no bank" in on_device.device and "sends no hash" in on_device.device
    assert "unless it is reported" in on_device.server
    safeguarded = IMAGE_HANDLING[PolicyMode.SAFEGUARDED].to_json()
    assert "before the message is stored" in safeguarded["server"]
    assert "withheld" in safeguarded["device"]
