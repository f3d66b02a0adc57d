"""Grooming-behaviour detection: an explainable conversation scorer in five languages.

Normalise obfuscation, match per-language lexicons, weigh who says what, accumulate with
decay, and map the score to an action (notice, guardian, report). Pure: the server and the
on-device client run the same code and persist `ConversationState` as JSON.
"""

from covey.safety.grooming._behaviours import Action, Band, Behaviour
from covey.safety.grooming._language import detect_language
from covey.safety.grooming._lexicon import LexiconError, Lexicons, load_lexicons
from covey.safety.grooming._normalise import Normalised, normalise
from covey.safety.grooming._scorer import (
    Alert,
    ConversationResult,
    Message,
    MessageResult,
    Scorer,
    Signal,
)
from covey.safety.grooming._settings import ScorerSettings
from covey.safety.grooming._state import ConversationState, StateError

__all__ = [
    "Action",
    "Alert",
    "Band",
    "Behaviour",
    "ConversationResult",
    "ConversationState",
    "LexiconError",
    "Lexicons",
    "Message",
    "MessageResult",
    "Normalised",
    "Scorer",
    "ScorerSettings",
    "Signal",
    "StateError",
    "detect_language",
    "load_lexicons",
    "normalise",
]
