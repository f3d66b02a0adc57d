"""What the scorer remembers about one conversation between messages. Plain numbers and
strings, so a server can persist it as JSON and a client keep it in its encrypted store."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from covey.safety.grooming._behaviours import Action, Behaviour

_VERSION = 1


class StateError(ValueError):
    """Stored state that cannot be read back."""


@dataclass(slots=True)
class AlertRecord:
    """The last alert raised for one behaviour: at which action, message and time."""

    action: str
    message_index: int
    time: float | None = None


@dataclass(slots=True)
class ConversationState:
    """Decaying evidence per behaviour and mitigator, and the alerts already raised."""

    language: str | None = None
    messages: int = 0
    last_time: float | None = None
    levels: dict[str, float] = field(default_factory=dict)
    mitigators: dict[str, float] = field(default_factory=dict)
    alerts: dict[str, AlertRecord] = field(default_factory=dict)
    max_score: float = 0.0
    max_action: str = Action.NONE.value

    def to_json(self) -> str:
        """Canonical JSON (sorted keys) with a version for later migrations."""
        return json.dumps({"v": _VERSION, **asdict(self)}, sort_keys=True,
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str) -> ConversationState:
        try:
            raw: dict[str, Any] = json.loads(data)
            if raw.pop("v", None) != _VERSION:
                raise StateError("unknown conversation state version")
            alerts = {Behaviour(k).value: AlertRecord(**v)
                      for k, v in raw.pop("alerts", {}).items()}
            state = cls(**raw, alerts=alerts)
            Action(state.max_action)
            for key in state.levels:
                Behaviour(key)
            return state
        except (TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"conversation state does not parse: {exc}") from exc
