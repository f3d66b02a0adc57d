"""The detector interface: decrypted content and its context in, typed signals out.

In the style of python-threatexchange's signal and content types: a detector is a small
class with a `name`, built from its operator options, and scanning never does I/O. The
service (the relay's scan queue, or the child's client in mode on-device) opens the
message and its attachments and hands them over as `Content`; a detector that follows a
conversation (`ConversationDetector`) gets its previous state in and gives the next out,
and the service keeps it.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from covey.protocol.content import AttachmentRef, MessageContent


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


class Category(enum.StrEnum):
    """What kind of harm a signal points at: the report categories moderators file by."""

    CHILD_SEXUAL_EXPLOITATION_IMAGERY = "child_sexual_exploitation_imagery"
    GROOMING_OR_ENTICEMENT = "grooming_or_enticement"
    SEXTORTION = "sextortion"
    HARASSMENT = "harassment"
    SPAM = "spam"
    OTHER = "other"

    @classmethod
    def parse(cls, value: str | None) -> Category:
        """A known category, or OTHER (operator files may name their own)."""
        return cls(value) if value is not None and value in cls._value2member_map_ \
            else cls.OTHER


class Response(enum.StrEnum):
    """What a signal asks the service to do. Each implies none of the others: a detector
    names every one it wants (the grooming scorer: notice; notice and guardian; all three)."""

    NOTICE = "notice"  # a plain-language safety notice to the child in the conversation
    GUARDIAN = "guardian"  # an alert to the child's guardians: the category, never content
    REPORT = "report"  # a moderator report with the verified evidence


@dataclass(frozen=True)
class Attachment:
    """One attachment as a detector sees it: the franked reference and, when the service
    fetched and decrypted it (a detector that `wants_bytes`), the plaintext bytes."""

    ref: AttachmentRef
    data: bytes | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def mime(self) -> str:
        return self.ref.mime

    @property
    def blob_id(self) -> str:
        return self.ref.blob_id


@dataclass(frozen=True)
class Content:
    """A decrypted message: its text and its attachments (bytes where fetched)."""

    text: str = ""
    attachments: tuple[Attachment, ...] = ()

    @classmethod
    def of(cls, message: MessageContent,
           data: Mapping[str, bytes] | None = None) -> Content:
        """`message` with the attachment plaintexts in `data` (by blob id)."""
        data = data or {}
        return cls(message.text, tuple(Attachment(ref, data.get(ref.blob_id))
                                       for ref in message.attachments))


@dataclass(frozen=True)
class ScanContext:
    """Where the content was seen. Detectors may weigh it; they must not store it."""

    message_id: str
    conversation_id: str
    sender_user: str
    # Whether any participant is under age or unverified (some signals only matter then).
    safeguarded: bool = True
    # Each participant's age band ("16+", "under-16", "unverified"), when the service
    # knows them: who says what to whom.
    bands: Mapping[str, str] = field(default_factory=dict)
    sent_at_ms: int | None = None


@dataclass(frozen=True)
class Span:
    """Where in the content the evidence is: `field` is "text" or "attachment:N" (N the
    attachment's index), `start`/`end` offsets in that text (0, 0 for a whole file)."""

    field: str
    start: int
    end: int

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Signal:
    """One hit: a typed category, a score, a reason a moderator can read and the
    evidence span. `detail` names what matched (operator data), never the user's text.
    `responses` None: the service decides by `severity` (phrase lists); otherwise the
    detector's own call. `notice` is the child-facing text for a NOTICE."""

    detector: str
    code: str
    severity: Severity
    message_id: str
    conversation_id: str
    sender_user: str
    category: Category = Category.OTHER
    score: float = 1.0
    reason: str = ""
    span: Span | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    responses: frozenset[Response] | None = None
    notice: str = ""

    def should_report(self, minimum: Severity = Severity.MEDIUM) -> bool:
        """Whether this signal raises a moderator report at the operator's threshold."""
        if self.responses is not None:
            return Response.REPORT in self.responses
        return self.severity >= minimum

    def asks(self, response: Response, minimum: Severity = Severity.MEDIUM) -> bool:
        """Whether the service should act with `response` on this signal."""
        if self.responses is not None:
            return response in self.responses
        if response is Response.REPORT:
            return self.severity >= minimum
        if response is Response.GUARDIAN:
            return self.severity is Severity.HIGH
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "code": self.code,
            "category": self.category.value,
            "severity": self.severity.name.lower(),
            "score": round(self.score, 4),
            "reason": self.reason,
            "span": None if self.span is None else self.span.to_json(),
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "sender_user": self.sender_user,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True)
class Scan:
    """A conversation detector's answer: its signals and the conversation's next state
    (None: nothing worth keeping)."""

    signals: list[Signal]
    state: str | None = None


class Detector(ABC):
    """Subclass in a module of `covey.safety.detectors` and the registry finds it."""

    name: ClassVar[str]
    # Whether the service should fetch and decrypt attachments for this detector.
    wants_bytes: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """Build from the operator's options (e.g. `{"path": "phrases.txt"}`)."""

    @classmethod
    def watched_paths(cls, options: Mapping[str, Any]) -> Sequence[Path]:
        """Files the options name: when one changes the detector is built again."""
        return ()

    @abstractmethod
    def scan(self, content: Content, context: ScanContext) -> list[Signal]:
        """Signals for one message; an empty list when nothing matched."""

    # --- on-device rules (mode on-device): what clients need to build the same detector

    def to_rules(self) -> str | None:
        """This detector's rules as text for children's clients (signed by the server),
        or None when it does not run on the device."""
        return None

    @classmethod
    def from_rules(cls, rules: str) -> Self:
        """Build on the device from `to_rules()` text. Raises `InvalidInput` when the
        text does not parse."""
        raise NotImplementedError(f"the {cls.name} detector does not run on the device")


class ConversationDetector(Detector):
    """A detector that follows each conversation: the service stores its state (an
    opaque string) per conversation and passes it back with the next message."""

    @abstractmethod
    def scan_conversation(self, content: Content, context: ScanContext,
                          state: str | None) -> Scan:
        """Signals for one message given the conversation so far, and the next state."""

    def scan(self, content: Content, context: ScanContext) -> list[Signal]:
        return self.scan_conversation(content, context, None).signals
