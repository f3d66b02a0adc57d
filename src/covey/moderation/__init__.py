"""Verifiable reporting: report evidence, verification, evidence bundles and
CyberTipline-style reports. Pure functions, no I/O beyond reading and writing bundles."""

from covey.moderation.attestation import attestation_key_id, load_public_key, public_key_pem
from covey.moderation.bundle import (
    BundleDifference,
    BundleVerification,
    EvidenceBundle,
    build_bundle,
    verify_bundle,
)
from covey.moderation.cybertip import (
    CyberTipDocuments,
    EspContact,
    FileMatch,
    KnownVictim,
    build_cybertip,
    cybertip_schema,
)
from covey.moderation.evidence import (
    MAX_PRECEDING,
    EvidenceContext,
    EvidenceItem,
    Report,
    ReportCategory,
)
from covey.moderation.verify import (
    AttachmentCheck,
    Finding,
    ItemStatus,
    ItemVerification,
    ReportUnverifiable,
    ReportVerification,
    report_fingerprint,
    verify_report,
)

__all__ = [
    "MAX_PRECEDING",
    "AttachmentCheck",
    "BundleDifference",
    "BundleVerification",
    "CyberTipDocuments",
    "EspContact",
    "EvidenceBundle",
    "EvidenceContext",
    "EvidenceItem",
    "FileMatch",
    "Finding",
    "ItemStatus",
    "ItemVerification",
    "KnownVictim",
    "Report",
    "ReportCategory",
    "ReportUnverifiable",
    "ReportVerification",
    "attestation_key_id",
    "build_bundle",
    "build_cybertip",
    "cybertip_schema",
    "load_public_key",
    "public_key_pem",
    "report_fingerprint",
    "verify_bundle",
    "verify_report",
]
