"""Find lexicon phrases in a message: one Aho-Corasick automaton per language over the
normalised text (every phrase in one pass), one combined regular expression over the
original text for phone numbers, links and handles."""

from __future__ import annotations

import re
from dataclasses import dataclass

import ahocorasick

from covey.safety.grooming._lexicon import Lexicon, Pattern, RegexPattern
from covey.safety.grooming._normalise import normalise

# The parts of an `a ... b` entry must appear within this many characters of each other.
_GAP_LIMIT = 60


@dataclass(frozen=True, slots=True)
class Hit:
    """One match in one message: what it means and where it was in the original text."""

    category: str  # Behaviour value or mitigator name
    mitigator: bool
    weight: float
    source: str  # the lexicon entry (or regex name) that matched
    start: int
    end: int


class Matcher:
    """Compiled patterns of one language (plus the common regular expressions)."""

    def __init__(self, lexicons: list[Lexicon], regexes: tuple[RegexPattern, ...]) -> None:
        self._patterns: list[Pattern] = []
        automaton = ahocorasick.Automaton()
        keys: dict[str, list[tuple[int, int]]] = {}
        for lexicon in lexicons:
            for pattern in lexicon.patterns:
                index = len(self._patterns)
                self._patterns.append(pattern)
                for part_no, key in enumerate(pattern.parts):
                    keys.setdefault(key, []).append((index, part_no))
        for key, targets in keys.items():
            automaton.add_word(key, (len(key), self._lightest(targets)))
        automaton.make_automaton()
        self._automaton = automaton
        self._iter = automaton.iter
        self._regexes = regexes
        self._regex = (re.compile("|".join(f"(?P<r{i}>{r.pattern})" for i, r in
                                           enumerate(regexes)), re.IGNORECASE)
                       if regexes else None)

    def _lightest(self, targets: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
        """The targets of one key, keeping for whole-phrase patterns only the heaviest per
        category: the rest would match the same words and lose (a key such as " robux "
        stands in dozens of expanded entries)."""
        best: dict[tuple[str, bool], tuple[int, int]] = {}
        kept: list[tuple[int, int]] = []
        for index, part_no in targets:
            pattern = self._patterns[index]
            if len(pattern.parts) > 1:
                kept.append((index, part_no))
                continue
            slot = (pattern.category, pattern.mitigator)
            current = best.get(slot)
            if current is None or pattern.weight > self._patterns[current[0]].weight:
                best[slot] = (index, part_no)
        return (*best.values(), *kept)

    def match(self, text: str) -> list[Hit]:
        """Every behaviour found in `text` (the heaviest match of each), and the mitigators
        no risk phrase covers; spans in the original text's offsets."""
        found = list(self._iter(normalise(text, with_spans=False).text))
        # Candidates in normalised offsets: (pattern index, start, end).
        candidates: list[tuple[int, int, int]] = []
        if found:
            partial: dict[int, list[tuple[int, int, int]]] = {}
            for end, (length, targets) in found:
                start = end - length + 1
                for index, part_no in targets:
                    if len(self._patterns[index].parts) == 1:
                        candidates.append((index, start, end))
                    elif part_no == 0:
                        partial.setdefault(index, []).append((part_no, start, end))
                    elif index in partial:
                        # Later parts end after the first: the automaton reports in end
                        # order, so a pattern whose first part was not seen is skipped.
                        partial[index].append((part_no, start, end))
            for index, parts in partial.items():
                span = _in_order(parts, len(self._patterns[index].parts))
                if span is not None:
                    candidates.append((index, *span))
        hits = self._winners(text, candidates) if candidates else []
        if self._regex is not None and _MAY_HAVE_REGEX.search(text):
            for m in self._regex.finditer(text):
                regex = self._regexes[int(str(m.lastgroup)[1:])]
                hits.append(Hit(regex.behaviour.value, False, regex.weight, regex.name,
                                m.start(), m.end()))
            return _resolve(hits) if len(hits) > 1 else hits
        return hits

    def _winners(self, text: str, candidates: list[tuple[int, int, int]]) -> list[Hit]:
        """One match per category (the heaviest, then longest); no mitigator where a risk
        phrase covers the same words ("don't tell your mum" is secrecy, not "tell your
        mum"). Only the winners are mapped back to the original text."""
        patterns = self._patterns
        risks = [(s, e) for i, s, e in candidates if not patterns[i].mitigator]
        best: dict[str, tuple[float, int, int, int, int]] = {}
        for index, start, end in candidates:
            pattern = patterns[index]
            if pattern.mitigator and any(s < end and start < e for s, e in risks):
                continue
            key = (pattern.weight, end - start)
            current = best.get(pattern.category)
            if current is None or key > current[:2]:
                best[pattern.category] = (*key, index, start, end)
        spanned = normalise(text)
        hits = []
        for _, _, index, start, end in best.values():
            pattern = patterns[index]
            hits.append(Hit(pattern.category, pattern.mitigator, pattern.weight, pattern.source,
                            *spanned.original_span(start + 1, end)))
        return sorted(hits, key=lambda h: (h.start, h.category))


# Every common regex needs a digit, an @, a dot or a slash: most messages skip them.
_MAY_HAVE_REGEX = re.compile(r"[\d@./]")


def _in_order(parts: list[tuple[int, int, int]], count: int) -> tuple[int, int] | None:
    """The span of parts 0..count-1 appearing in order, each close to the previous."""
    parts.sort(key=lambda p: p[1])
    for first in (p for p in parts if p[0] == 0):
        want, start, last_end = 1, first[1], first[2]
        for part_no, s, e in parts:
            if part_no == want and s > last_end - 1 and s - last_end <= _GAP_LIMIT:
                want, last_end = want + 1, e
                if want == count:
                    return start, last_end
    return None


def _resolve(hits: list[Hit]) -> list[Hit]:
    """Phrase winners and regular-expression hits together, in original offsets: one per
    category (the heaviest, then longest), no mitigator under a risk."""
    risks = [h for h in hits if not h.mitigator]
    best: dict[str, Hit] = {}
    for hit in hits:
        if hit.mitigator and any(r.start < hit.end and hit.start < r.end for r in risks):
            continue
        current = best.get(hit.category)
        if current is None or (hit.weight, hit.end - hit.start) > (
                current.weight, current.end - current.start):
            best[hit.category] = hit
    return sorted(best.values(), key=lambda h: (h.start, h.category))

