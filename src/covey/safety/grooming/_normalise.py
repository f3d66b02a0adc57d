# ruff: noqa: RUF001  (the look-alike letters below are the point of this module)
"""Undo the cheap obfuscations before matching, and keep a map back to the original text.

Casing, diacritics, Cyrillic/Greek look-alikes, fullwidth and "mathematical" letters fold
to plain Latin in one length-preserving `str.translate`, so offsets survive. The text is
then cut into tokens (punctuation inside a word, "s.n.a.p", joins it); leetspeak digits
between letters become letters, repeated letters are squeezed to one, runs of single letters
("w h a t s a p p") join, and substitute emoji become words. Each token remembers the span
of the original text it came from, so a match reports where it was in the message.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

# Look-alikes NFKD does not fold to Latin: Cyrillic and Greek letters typed to dodge filters.
_HOMOGLYPHS = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
    "һ": "h", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ɑ": "a", "ı": "i", "ł": "l", "ø": "o", "đ": "d",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "s", "σ": "o", "γ": "y", "μ": "u", "ѵ": "v",
    "ß": "s", "æ": "a", "œ": "o",
}
# Characters that join a word when they sit inside it: "s.n.a.p", "snap_chat", "wh\u200bats".
_JOINER = "\x00"
_INTERIOR = ".-_'’*·~^+/\\" + _JOINER
# Emoji people use instead of a word. They become that word for matching.
EMOJI_WORDS: dict[str, str] = {
    "👻": "snapchat", "📸": "photo", "📷": "photo", "🤳": "selfie", "🤫": "secret",
    "🤐": "secret", "🎁": "gift", "💰": "money", "💵": "money", "💸": "money", "💶": "money",
    "💲": "money", "📞": "call", "☎": "call", "📱": "phone", "📲": "phone", "🎮": "game",
    "📹": "videocall", "🎥": "videocall", "🏠": "home", "📍": "location", "🗺": "location",
    "💌": "love", "😘": "kiss", "💋": "kiss", "💕": "love", "❤": "love", "😍": "love",
    "🥰": "love", "🚗": "car", "🚪": "door", "🙈": "secret",
}
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                       "8": "b", "9": "g", "@": "a", "$": "s", "!": "i", "|": "i"})


def _build_fold_table() -> dict[int, str]:
    """One character in, one character out: lowercase, no diacritics, Latin look-alikes."""
    table: dict[int, str] = {}
    ranges = [(0x00C0, 0x0250), (0x0370, 0x0530), (0x1E00, 0x1F00), (0xFF01, 0xFF5F),
              (0x1D400, 0x1D800), (0x24B6, 0x24EA), (0x0041, 0x005B)]
    for low, high in ranges:
        for code in range(low, high):
            ch = chr(code)
            folded = _HOMOGLYPHS.get(ch.lower(), "")
            if not folded:
                decomposed = unicodedata.normalize("NFKD", ch)
                base = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
                folded = _HOMOGLYPHS.get(base, base)
            if len(folded) == 1 and folded != ch:
                table[code] = folded
    for code in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x034F, 0x180E):
        table[code] = _JOINER  # zero-width characters and soft hyphens inside words
    for code in range(0x0300, 0x0370):
        table[code] = _JOINER  # combining accents typed on their own
    for quote in "‘ʼ`´":
        table[ord(quote)] = "'"
    return table


_FOLD = _build_fold_table()
_EMOJI_CLASS = "".join(sorted(EMOJI_WORDS))
_TOKEN = re.compile(
    rf"[^\W_]+(?:[{re.escape(_INTERIOR)}@$!|]+[^\W_]+)*|[{_EMOJI_CLASS}]", re.UNICODE)
_LEET_INSIDE = re.compile(r"(?<=[a-z])[0-9@$!|]+(?=[a-z])|(?<=[a-z])[013457]+(?![a-z0-9])")
# A leading digit only once the rest of the word is letters: "5n4p" -> "5nap" -> "snap".
_LEET_LEADING = re.compile(r"(?<![a-z0-9])[013457](?=[a-z]{3,})")
_STRIP_INTERIOR = re.compile(f"[{re.escape(_INTERIOR)}]")
# One literal alternative per letter: faster in `re` than a back-reference.
_REPEATS = re.compile("|".join(c + c + "+" for c in "abcdefghijklmnopqrstuvwxyz"))
_LEET_CHARS = re.compile(r"[0-9@$!|]")
_INTERIOR_CHARS = _STRIP_INTERIOR
_EMOJI_ANY = re.compile(f"[{_EMOJI_CLASS}]")
# Letters typed one by one ("w h a t s a p p"): runs of single letters one space apart.
_SPACED_RUN = re.compile(r"(?<!\w)[^\W\d_](?: [^\W\d_])+(?!\w)")


_NO_STARTS: tuple[int, ...] = ()
_NO_SPANS: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Normalised:
    """The matching form of one message: ` tok tok tok ` plus each token's original span."""

    text: str  # space-padded at both ends, tokens one space apart
    starts: tuple[int, ...]  # where each token starts in `text`
    spans: tuple[tuple[int, int], ...]  # each token's (start, end) in the original message

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original offsets covering the tokens between normalised `start` and `end`."""
        first = max(0, bisect_right(self.starts, start) - 1)
        last = max(first, bisect_right(self.starts, max(start, end - 1)) - 1)
        return self.spans[first][0], self.spans[last][1]


def _unleet(match: re.Match[str]) -> str:
    return match.group().translate(_LEET)


def _first(match: re.Match[str]) -> str:
    return match.group()[0]


def squeeze(text: str) -> str:
    """Repeated letters to one: "sooo" and "so" meet."""
    return _REPEATS.sub(_first, text)


@lru_cache(maxsize=65536)
def fold_word(word: str) -> str:
    """The per-token part of normalisation, for lexicon entries (no spans needed)."""
    return normalise(word).text.strip()


def normalise(message: str, *, with_spans: bool = True) -> Normalised:
    """Tokens of `message` in matching form, each with the span it came from.

    `with_spans=False` is the fast path for the common message that matches nothing: the
    same text, no spans (the matcher asks again with spans only when something matched).
    """
    if message.isascii():
        folded = message.lower()
    else:
        folded = message.translate(_FOLD).lower()
        if len(folded) != len(message):  # a lowercase that expands ("İ"): keep it 1:1
            folded = "".join(c.lower() if len(c.lower()) == 1 else c
                             for c in message.translate(_FOLD))
    if " " in folded and _SPACED_RUN.search(folded):
        folded = _join_spaced(folded)
    if with_spans:
        matches = list(_TOKEN.finditer(folded))
        spans = [m.span() for m in matches]
        raw = " ".join(m.group() for m in matches)
    else:
        spans = []
        raw = " ".join(_TOKEN.findall(folded))
    if not raw:
        return Normalised(" ", (), ())
    if _LEET_CHARS.search(raw):
        raw = _LEET_INSIDE.sub(_unleet, raw)
        raw = _LEET_LEADING.sub(_unleet, raw)
    if _INTERIOR_CHARS.search(raw):
        raw = _STRIP_INTERIOR.sub("", raw)
    raw = _REPEATS.sub(_first, raw)
    if not raw.isascii() and _EMOJI_ANY.search(raw):
        raw = " ".join(EMOJI_WORDS.get(w, w) for w in raw.split(" "))
    if not with_spans:
        return Normalised(" " + raw + " ", _NO_STARTS, _NO_SPANS)
    words = raw.split(" ")
    starts, position = [], 1
    for word in words:
        starts.append(position)
        position += len(word) + 1
    return Normalised(" " + " ".join(words) + " ", tuple(starts), tuple(spans))


def _join_spaced(folded: str) -> str:
    """Join letters typed one by one into words, keeping the text's length (the spaces
    become joiners). Only when some run has three letters or more ("w h a t s"), so
    "y a mí" stays; then two-letter runs join too ("a d d   m e   o n" is three words)."""
    runs = list(_SPACED_RUN.finditer(folded))
    if not any(len(m.group()) >= 5 for m in runs):
        return folded
    out = list(folded)
    for m in runs:
        for i in range(m.start(), m.end()):
            if out[i] == " ":
                out[i] = _JOINER
    return "".join(out)
