"""Verifiable reporting: report evidence, verification, evidence bundles and
CyberTipline-style reports. Pure functions, no I/O beyond reading and writing bundles."""

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
    "EvidenceContext",
    "EvidenceItem",
    "Finding",
    "ItemStatus",
    "ItemVerification",
    "Report",
    "ReportCategory",
    "ReportUnverifiable",
    "ReportVerification",
    "report_fingerprint",
    "verify_report",
]
