"""Detectors over safety copies (server) or decrypted messages (on-device mode).

One interface (`Detector.scan(content, context) -> list[Signal]`; a `ConversationDetector`
also takes and gives the conversation's state), one registry, one set built from settings
and hot-reloaded: a new detector is a new module in this package and a setting.
"""

from covey.safety.detectors._base import (
    Attachment,
    Category,
    Content,
    ConversationDetector,
    Detector,
    Response,
    Scan,
    ScanContext,
    Severity,
    Signal,
    Span,
)
from covey.safety.detectors._registry import available_detectors, build_detectors
from covey.safety.detectors._set import (
    DetectorRules,
    DetectorSet,
    detectors_from_rules,
    rules_version,
)
from covey.safety.detectors._text import normalise

__all__ = [
    "Attachment",
    "Category",
    "Content",
    "ConversationDetector",
    "Detector",
    "DetectorRules",
    "DetectorSet",
    "Response",
    "Scan",
    "ScanContext",
    "Severity",
    "Signal",
    "Span",
    "available_detectors",
    "build_detectors",
    "detectors_from_rules",
    "normalise",
    "rules_version",
]
