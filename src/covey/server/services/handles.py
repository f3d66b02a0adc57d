"""Handle rules beyond the wire pattern: look-alike handles collide by a confusable
skeleton, names the server uses are reserved in every variant, and handles that carry an
operator-listed phrase are refused (a handle is shown to the person it contacts)."""

from __future__ import annotations

import re
import unicodedata

from covey.safety.detectors._text import normalise
from covey.safety.detectors.phrase_list import PhraseListFile

# Names the server itself uses (reports filed by the safety service), reserved with every
# look-alike of them.
RESERVED_HANDLES = frozenset({"covey-safety", "covey", "covey-support", "covey-admin",
                              "covey-moderation"})

# Handles are ASCII ([a-z0-9._-], see protocol/ids.py), where Unicode TR39's skeleton
# mapping (confusables.txt) reduces to these sequences; applied after NFKC and casefold
# so that a wider handle alphabet would still fold the same way. Separators vanish.
_FOLDS: tuple[tuple[str, str], ...] = (
    (".", ""), ("-", ""), ("_", ""),
    ("rn", "m"), ("vv", "w"), ("cl", "d"),
    ("0", "o"), ("1", "l"), ("|", "l"),
)


def handle_skeleton(handle: str) -> str:
    """The form two handles share when they look alike: `mia_x`, `mia.x`, `rnia-x`
    and `mlax` all give `mlax`."""
    text = unicodedata.normalize("NFKC", handle).casefold()
    # Repeat until stable: removing a separator can join a new "r" + "n".
    while True:
        folded = text
        for old, new in _FOLDS:
            folded = folded.replace(old, new)
        if folded == text:
            return folded
        text = folded


# Shorter phrases would refuse ordinary handles that merely contain them.
_MIN_PHRASE = 4
_RESERVED_SKELETONS = frozenset(handle_skeleton(h) for h in RESERVED_HANDLES)


def is_reserved(handle: str) -> bool:
    return handle_skeleton(handle) in _RESERVED_SKELETONS


class HandlePhrases:
    """The operator's phrase list (`safety_phrase_list`, the file the phrase detector
    reads, re-read when it changes) matched against a handle's skeleton, so separators
    and look-alike letters do not hide a phrase in a handle."""

    def __init__(self, phrases: PhraseListFile) -> None:
        self._phrases = phrases
        self._text: str | None = None
        self._skeletons: tuple[str, ...] = ()

    def matches(self, handle: str) -> bool:
        text, detector = self._phrases.current()
        if text != self._text:
            entries = detector.entries if detector is not None else ()
            self._skeletons = tuple(sorted({s for s in (_phrase_key(e.phrase)
                                                        for e in entries)
                                            if len(s) >= _MIN_PHRASE}))
            self._text = text
        key = _phrase_key(handle)
        return any(phrase in key for phrase in self._skeletons)


def _phrase_key(text: str) -> str:
    """The phrase detector's normalisation (leetspeak digits too), then the skeleton."""
    return handle_skeleton(re.sub(r"[\W_]", "", normalise(text)))
