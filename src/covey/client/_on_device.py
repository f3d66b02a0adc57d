"""On-device detection (mode on-device): the detectors the server's signed rules describe,
run here on every message this child's account receives, with each conversation's
detector state kept in the encrypted store. Nothing leaves the device: a hit becomes an
event shown to this user only (`SafetyWarning`, `SafetyNotice`), and only the user's own
report sends anything.

Rules are checked (policy-key signature, version = hash of their content) before use; rules
that do not verify or build are ignored and the last good ones kept (in the store, so a
restart keeps them too). Pure apart from the store: no network."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence

from covey.client._events import Event, IncomingMessage, SafetyNotice, SafetyWarning
from covey.client._policy import check_on_device_rules
from covey.client._store import Store
from covey.errors import CoveyError
from covey.protocol.wire import OnDeviceRules
from covey.safety.detectors import (
    Content,
    ConversationDetector,
    Detector,
    Response,
    ScanContext,
    Severity,
    detectors_from_rules,
)

log = logging.getLogger(__name__)

# Where safety notices raised on the device point for help (a helpline directory).
HELP_URL = "https://childhelplineinternational.org/helplines/"
_RULES = ("on_device_rules", "current")
_STATE = "detector_state"


class OnDeviceDetection:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._detectors: list[Detector] = []
        self.version: str | None = None
        stored = store.get(*_RULES)
        if stored is not None:
            try:
                self._detectors = detectors_from_rules(stored["detectors"])
                self.version = str(stored["version"])
            except (CoveyError, ValueError, KeyError, NotImplementedError) as exc:
                log.warning("stored on-device rules do not build (%s): waiting for new ones",
                            exc)

    @property
    def active(self) -> bool:
        return bool(self._detectors)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self._detectors)

    def clear(self) -> None:
        """Not in mode on-device (any more): no detectors, no rules kept."""
        self._detectors, self.version = [], None
        self._store.delete(*_RULES)

    def update(self, rules: OnDeviceRules, signing_key: str) -> bool:
        """Use `rules` if they verify and build (True when they replaced the old ones).
        Raises `CryptoError` when they do not verify; rules that verify but do not build
        are the operator's mistake: logged, and the last good rules kept."""
        check_on_device_rules(rules, signing_key)
        if rules.version == self.version:
            return False
        try:
            detectors = detectors_from_rules(rules.detectors)
        except (CoveyError, ValueError, NotImplementedError) as exc:
            log.warning("the server's on-device rules do not build (%s): keeping the "
                        "previous ones", getattr(exc, "message", exc))
            return False
        self._detectors, self.version = detectors, rules.version
        self._store.put(*_RULES, {"version": rules.version,
                                  "detectors": dict(rules.detectors)})
        return True

    def scan(self, message: IncomingMessage, user_id: str,
             protected: Sequence[str]) -> list[Event]:
        """Events for one received message. `protected`: the conversation's participants
        whose own clients run detection (under 16 or unverified, as the signed policy
        says); the device cannot tell those apart, so a protected sender counts as
        unverified, and anyone else as 16+."""
        sender = message.sender_user
        bands = {user_id: "under-16",
                 sender: "unverified" if sender in protected else "16+"}
        context = ScanContext(message.message_id, message.conversation_id, sender,
                              bands=bands, sent_at_ms=message.server_ts_ms)
        content = Content.of(message.evidence.content)
        events: list[Event] = []
        with self._store.transaction():
            for detector in self._detectors:
                if isinstance(detector, ConversationDetector):
                    key = f"{message.conversation_id}|{detector.name}"
                    stored = self._store.get(_STATE, key)
                    scan = detector.scan_conversation(
                        content, context, None if stored is None else str(stored["state"]))
                    if scan.state is not None:
                        self._store.put(_STATE, key, {"state": scan.state})
                    signals = scan.signals
                else:
                    signals = detector.scan(content, context)
                for signal in signals:
                    if signal.asks(Response.NOTICE) and signal.notice:
                        behaviours = signal.detail.get("behaviours") or [signal.code]
                        events.append(SafetyNotice(
                            notice_id="sn_" + secrets.token_urlsafe(12),
                            conversation_id=message.conversation_id,
                            message_id=message.message_id, sender_user=sender,
                            detector=signal.detector,
                            behaviours=tuple(str(b) for b in behaviours),
                            text=signal.notice, help_url=HELP_URL,
                            created_at_ms=message.server_ts_ms, on_device=True))
                    elif signal.responses is None and signal.severity >= Severity.LOW:
                        # A detector without its own responses (a phrase list): a warning.
                        events.append(SafetyWarning(message.conversation_id,
                                                    message.message_id, sender,
                                                    signal.code,
                                                    signal.severity.name.lower()))
        return events
