"""Text normalisation for matching: defeats the cheap evasions, keeps the words.

NFKC (full-width and stylised letters to plain ones), format characters removed (zero
width spaces and joiners, soft hyphens, bidi controls), casefold, diacritics stripped,
common leetspeak digits folded (l, i and 1 fold to one letter), apostrophes dropped, other
punctuation and symbols to spaces, whitespace collapsed.
"""

from __future__ import annotations

import unicodedata

# Digits people type for letters. `l` joins `1` and `i`: "te11" and "tell" must meet.
_LEET = str.maketrans({"0": "o", "1": "i", "l": "i", "3": "e", "4": "a", "5": "s",
                       "7": "t", "8": "b", "9": "g"})
_APOSTROPHES = frozenset("'\u2018\u2019\u02bc`")


def normalise(text: str) -> str:
    """The matching form of `text`: lowercase words of letters and digits, one space apart."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = text.casefold()
    text = "".join(ch for ch in unicodedata.normalize("NFD", text)
                   if not unicodedata.combining(ch))
    text = unicodedata.normalize("NFC", text).translate(_LEET)
    kept = []
    for ch in text:
        if ch in _APOSTROPHES:
            continue
        kept.append(ch if ch.isalnum() else " ")
    return " ".join("".join(kept).split())


def compact(normalised: str) -> str:
    """The normalised form without spaces: catches "d o n t  t e l l" spacing."""
    return normalised.replace(" ", "")
