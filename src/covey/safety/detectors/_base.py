"""The detector interface: content and context in, signals out.

In the style of python-threatexchange's signal types: a detector is a small class with
a `name`, built from its operator options, and scanning never does I/O.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from covey.protocol.content import MessageContent


class Severity(enum.IntEnum):
    """How urgently a signal needs a human. Ordered, so thresholds compare."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls[value.strip().upper()]
        except KeyError as exc:
            choices = ", ".join(member.name.lower() for member in cls)
            raise ValueError(f"unknown severity {value!r}; choose one of {choices}") from exc


@dataclass(frozen=True)
class ScanContext:
    """Where the content was seen. Detectors may weigh it; they must not store it."""

    message_id: str
    conversation_id: str
    sender_user: str
    # Whether any participant is under age or unverified (some signals only matter then).
    safeguarded: bool = True


@dataclass(frozen=True)
class Signal:
    """One hit. `detail` names what matched (operator data), never the user's text."""

    detector: str
    code: str
    severity: Severity
    message_id: str
    conversation_id: str
    sender_user: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def should_report(self, minimum: Severity = Severity.MEDIUM) -> bool:
        """Whether this signal raises a moderator report at the operator's threshold."""
        return self.severity >= minimum

    def to_json(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "code": self.code,
            "severity": self.severity.name.lower(),
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "sender_user": self.sender_user,
            "detail": dict(self.detail),
        }


class Detector(ABC):
    """Subclass in a module of `covey.safety.detectors` and the registry finds it."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """Build from the operator's options (e.g. `{"path": "phrases.txt"}`)."""

    @abstractmethod
    def scan(self, content: MessageContent, context: ScanContext) -> list[Signal]:
        """Signals for one message; an empty list when nothing matched."""
