"""Operator-managed phrase list: a text file of phrases, each hit a `Signal`.

File format, one entry per line (UTF-8); blank lines and lines starting with `#` are
ignored; optional options in leading brackets, comma-separated:

    [high] don't tell your parents
    [medium, category=off-platform] let's move this to another app
    [low, exact] SecretCode42

Severity is `low`, `medium` (default) or `high`. An entry matches the literal text, or
its normalised form (see `_text.normalise`) unless marked `exact`; normalised entries
of 10 or more letters also match across inserted spaces.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from covey.errors import InvalidInput
from covey.safety.detectors._base import (
    Category,
    Content,
    Detector,
    ScanContext,
    Severity,
    Signal,
    Span,
)
from covey.safety.detectors._text import compact, normalise

log = logging.getLogger(__name__)

COMPACT_MIN_LETTERS = 10  # shorter phrases would match inside unrelated words
MAX_PHRASE_CHARS = 500
_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")


class PhraseListError(InvalidInput):
    code = "phrase_list_invalid"


@dataclass(frozen=True)
class PhraseEntry:
    line: int
    phrase: str
    severity: Severity = Severity.MEDIUM
    exact: bool = False
    category: str = "phrase"

    @property
    def normalised(self) -> str:
        return normalise(self.phrase)

    def literal_pattern(self) -> re.Pattern[str]:
        # Word edges only where the phrase itself starts or ends with a word character.
        start = r"(?<!\w)" if re.match(r"\w", self.phrase) else ""
        end = r"(?!\w)" if re.search(r"\w$", self.phrase) else ""
        return re.compile(start + re.escape(self.phrase) + end)


def parse_phrase_list(text: str) -> tuple[PhraseEntry, ...]:
    """Parse the operator's file. Raises `PhraseListError` naming the bad line."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        severity, exact, category = Severity.MEDIUM, False, "phrase"
        if line.startswith("["):
            close = line.find("]")
            if close < 0:
                raise PhraseListError(f"line {number}: unclosed '['")
            for option in (part.strip() for part in line[1:close].split(",")):
                if option == "exact":
                    exact = True
                elif option.startswith("category="):
                    category = option.removeprefix("category=")
                    if not _CATEGORY.match(category):
                        raise PhraseListError(f"line {number}: bad category {category!r}")
                else:
                    try:
                        severity = Severity.parse(option)
                    except ValueError as exc:
                        raise PhraseListError(f"line {number}: {exc}") from exc
            line = line[close + 1:].strip()
        if not line:
            raise PhraseListError(f"line {number}: no phrase")
        if len(line) > MAX_PHRASE_CHARS:
            raise PhraseListError(f"line {number}: phrase longer than {MAX_PHRASE_CHARS}")
        entry = PhraseEntry(number, line, severity, exact, category)
        if not exact and not entry.normalised:
            raise PhraseListError(f"line {number}: phrase has no letters or digits")
        entries.append(entry)
    return tuple(entries)


class PhraseListDetector(Detector):
    """Matches the operator's phrases in message text and attachment names."""

    name = "phrase_list"

    def __init__(self, entries: tuple[PhraseEntry, ...], text: str = "") -> None:
        self._entries = entries
        self._text = text
        self._literal = [entry.literal_pattern() for entry in entries]

    @classmethod
    def from_text(cls, text: str) -> Self:
        return cls(parse_phrase_list(text), text)

    @classmethod
    def from_file(cls, path: Path) -> Self:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PhraseListError(f"cannot read phrase list {path}: {exc}") from exc
        return cls.from_text(text)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        if "path" not in options:
            raise PhraseListError("the phrase_list detector needs a 'path' option")
        return cls.from_file(Path(options["path"]))

    @classmethod
    def watched_paths(cls, options: Mapping[str, Any]) -> Sequence[Path]:
        return [Path(options["path"])] if "path" in options else []

    def to_rules(self) -> str:
        """The list as its file reads: on-device clients parse the same text."""
        return self._text

    @classmethod
    def from_rules(cls, rules: str) -> Self:
        return cls.from_text(rules)

    @property
    def entries(self) -> tuple[PhraseEntry, ...]:
        return self._entries

    def scan(self, content: Content, context: ScanContext) -> list[Signal]:
        fields = [("text", content.text)] + [
            (f"attachment:{i}", a.name) for i, a in enumerate(content.attachments)]
        fields = [(where, text) for where, text in fields if text]
        if not fields or not self._entries:
            return []
        texts = [text for _, text in fields]
        normalised = [f" {normalise(text)} " for text in texts]
        compacted = [compact(text) for text in normalised]
        signals = []
        for entry, literal in zip(self._entries, self._literal, strict=True):
            found = self._match(entry, literal, texts, normalised, compacted)
            if found is None:
                continue
            how, index, start, end = found
            signals.append(Signal(
                detector=self.name,
                code=f"{self.name}.{entry.category}",
                severity=entry.severity,
                message_id=context.message_id,
                conversation_id=context.conversation_id,
                sender_user=context.sender_user,
                category=Category.parse(entry.category),
                score=float(entry.severity),
                reason=f"operator phrase list line {entry.line}: {entry.phrase!r} "
                       f"({how} match, {entry.severity.name.lower()})",
                span=Span(fields[index][0], start, end),
                detail={"line": entry.line, "phrase": entry.phrase, "match": how,
                        "category": entry.category},
            ))
        return signals

    @staticmethod
    def _match(entry: PhraseEntry, literal: re.Pattern[str], texts: list[str],
               normalised: list[str], compacted: list[str]
               ) -> tuple[str, int, int, int] | None:
        """How it matched, in which field, and where (the whole field when the match is
        on the normalised form, whose offsets are not the original's)."""
        for index, text in enumerate(texts):
            hit = literal.search(text)
            if hit:
                return "exact", index, hit.start(), hit.end()
        if entry.exact:
            return None
        phrase = entry.normalised
        for index, text in enumerate(normalised):
            if f" {phrase} " in text:
                return "normalised", index, 0, len(texts[index])
        squeezed = compact(phrase)
        if len(squeezed) >= COMPACT_MIN_LETTERS:
            for index, text in enumerate(compacted):
                if squeezed in text:
                    return "normalised", index, 0, len(texts[index])
        return None


class PhraseListFile:
    """The operator's phrase-list file, re-read when it changes. A bad edit (or a missing
    file) keeps the last list that parsed, so a typo never stops messaging."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._text = ""
        self._detector: PhraseListDetector | None = None

    def current(self) -> tuple[str, PhraseListDetector | None]:
        """The last good file text and its detector (None when there is no list)."""
        if self._path is None:
            return "", None
        try:
            stat = self._path.stat()
        except OSError:
            log.warning("phrase list %s is missing: keeping the last one read", self._path)
            return self._text, self._detector
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                text = self._path.read_text(encoding="utf-8")
                detector = PhraseListDetector.from_text(text)
            except (OSError, UnicodeDecodeError, PhraseListError) as exc:
                log.warning("phrase list %s not reloaded: %s", self._path, exc)
            else:
                self._text, self._detector = text, detector if detector.entries else None
        return self._text, self._detector
