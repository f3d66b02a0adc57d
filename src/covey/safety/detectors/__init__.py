"""Detectors over safety copies (server) or decrypted messages (on-device mode).

One interface (`Detector.scan(content, context) -> list[Signal]`), one registry: a new
detector is a new module in this package.
"""

from covey.safety.detectors._base import Detector, ScanContext, Severity, Signal
from covey.safety.detectors._registry import available_detectors, build_detectors
from covey.safety.detectors._text import normalise

__all__ = [
    "Detector",
    "ScanContext",
    "Severity",
    "Signal",
    "available_detectors",
    "build_detectors",
    "normalise",
]
