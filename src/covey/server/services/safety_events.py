"""Safety events: what the safety side of the relay tells other parts of it (guardian
alerts, metrics) without those parts reaching into each other. In-process, synchronous
fan-out to subscribers; a subscriber that fails is logged and never breaks the emitter.

Events carry ids and codes only, never message content."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContactAccepted:
    """`accepter` accepted `requester`'s contact request."""

    requester: str
    accepter: str
    at_ms: int


@dataclass(frozen=True)
class ReportFiled:
    """`reporter` filed a report about `reported_user` (category code, no evidence);
    `reported_user` is None for an unverified claim, which names nobody; `claimed_user`
    is the sender the evidence claims, verified or not (never counted against them)."""

    reporter: str
    reported_user: str | None
    category: str
    at_ms: int
    claimed_user: str | None = None


@dataclass(frozen=True)
class UserBlocked:
    """`blocker` blocked `blocked`."""

    blocker: str
    blocked: str
    at_ms: int


@dataclass(frozen=True)
class DetectionRaised:
    """A detector flagged a message in a safeguarded conversation; `alert_guardians`:
    the detector asks for the children's guardians to be told (the category and code)."""

    conversation_id: str
    sender_user: str
    participants: tuple[str, ...]
    detector: str
    code: str
    severity: str  # low, medium, high
    at_ms: int
    alert_guardians: bool = False
    category: str | None = None


SafetyEvent = ContactAccepted | ReportFiled | UserBlocked | DetectionRaised
Subscriber = Callable[[SafetyEvent], Awaitable[None]]


class SafetyEvents:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def emit(self, event: SafetyEvent) -> None:
        """Run every subscriber to completion (errors are logged, not raised)."""
        for subscriber in self._subscribers:
            try:
                await subscriber(event)
            except Exception:
                log.exception("safety event subscriber failed for %s", type(event).__name__)

    def emit_soon(self, event: SafetyEvent) -> None:
        """Emit from code that must not wait (e.g. a commit callback)."""
        task = asyncio.get_running_loop().create_task(self.emit(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
