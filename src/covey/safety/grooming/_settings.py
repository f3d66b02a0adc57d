"""The scorer's knobs in one frozen object: behaviour weights, who-says-what weights,
decay, combinations, mitigation, thresholds and the alert cool-down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from covey.safety.grooming._behaviours import Action, Band, Behaviour

B = Behaviour

_WEIGHTS = {
    B.OFF_PLATFORM: 1.0, B.SECRECY: 1.2, B.ISOLATION: 1.0, B.AGE_PROBE: 0.45,
    B.LOCATION_PROBE: 0.7, B.SUPERVISION_PROBE: 1.0, B.PHOTO_REQUEST: 1.0, B.GIFTS: 0.8,
    B.MEET_REQUEST: 1.1, B.FLATTERY: 0.5, B.AGE_DECEPTION: 1.0, B.PRESSURE: 0.9,
}

# Pairs that together say more than either alone (Thorn, O'Connell: moving the chat and
# secrecy come together; risk assessment before a request for photos or a meeting).
_COMBINATIONS = {
    (B.OFF_PLATFORM, B.SECRECY): 1.0, (B.SECRECY, B.PHOTO_REQUEST): 1.0,
    (B.SECRECY, B.MEET_REQUEST): 1.0, (B.SUPERVISION_PROBE, B.PHOTO_REQUEST): 0.8,
    (B.SUPERVISION_PROBE, B.MEET_REQUEST): 0.8, (B.SUPERVISION_PROBE, B.SECRECY): 0.6,
    (B.GIFTS, B.SECRECY): 0.8, (B.GIFTS, B.PHOTO_REQUEST): 0.6, (B.GIFTS, B.MEET_REQUEST): 0.6,
    (B.AGE_DECEPTION, B.OFF_PLATFORM): 0.6, (B.AGE_DECEPTION, B.FLATTERY): 0.5,
    (B.ISOLATION, B.FLATTERY): 0.5, (B.ISOLATION, B.SECRECY): 0.6,
    (B.PRESSURE, B.PHOTO_REQUEST): 0.8, (B.PRESSURE, B.SECRECY): 0.6,
    (B.LOCATION_PROBE, B.MEET_REQUEST): 0.6, (B.AGE_PROBE, B.FLATTERY): 0.4,
    (B.FLATTERY, B.OFF_PLATFORM): 0.4, (B.FLATTERY, B.PHOTO_REQUEST): 0.6,
    (B.OFF_PLATFORM, B.PHOTO_REQUEST): 0.5, (B.AGE_PROBE, B.SUPERVISION_PROBE): 0.4,
}

# How much a message counts by who sends it to whom. Adult-to-adult is never scanned.
_DIRECTION = {
    (Band.ADULT, Band.UNDER_16): 1.0, (Band.UNVERIFIED, Band.UNDER_16): 1.0,
    (Band.UNDER_16, Band.UNDER_16): 0.2, (Band.UNDER_16, Band.ADULT): 0.1,
    (Band.UNDER_16, Band.UNVERIFIED): 0.1,
}


@dataclass(frozen=True)
class ScorerSettings:
    """Weights and thresholds; the defaults are the ones tuned on the "tune" split."""

    weights: Mapping[Behaviour, float] = field(
        default_factory=lambda: MappingProxyType(dict(_WEIGHTS)))
    combinations: Mapping[tuple[Behaviour, Behaviour], float] = field(
        default_factory=lambda: MappingProxyType(dict(_COMBINATIONS)))
    direction: Mapping[tuple[Band, Band], float] = field(
        default_factory=lambda: MappingProxyType(dict(_DIRECTION)))
    # Evidence fades: by this factor per later message, and by half over this many seconds.
    message_decay: float = 0.97
    half_life_s: float = 3 * 24 * 3600.0
    # One behaviour repeated saturates at this multiple of its weight: below the notice
    # threshold for weights up to 1.0, so a parent asking twice whether anyone is home, or
    # a classmate asking twice for a handle, needs a second behaviour to alert.
    cap: float = 1.25
    # A behaviour present at this level counts towards breadth and names an alert.
    present: float = 0.45
    # Each behaviour present beyond the second adds this much.
    breadth_bonus: float = 0.25
    # A mitigator ("it's a surprise", "ask your mum") multiplies what it mitigates by this;
    # its effect fades by `mitigator_decay` per message.
    mitigation: float = 0.3
    mitigator_decay: float = 0.8
    # ... and scales what it mitigates that was said before it by this.
    mitigation_earlier: float = 0.6
    notice: float = 1.3
    guardian: float = 2.2
    report: float = 3.4
    # No second alert for the same behaviour at the same or a lower action within either.
    cooldown_messages: int = 200
    cooldown_s: float = 24 * 3600.0

    def action_for(self, score: float) -> Action:
        """The action a conversation score calls for."""
        if score >= self.report:
            return Action.REPORT
        if score >= self.guardian:
            return Action.GUARDIAN
        if score >= self.notice:
            return Action.NOTICE
        return Action.NONE
