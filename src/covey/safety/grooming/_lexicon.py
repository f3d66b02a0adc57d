"""Lexicons: the data files that say, per language, which phrases show which behaviour.

The package ships one TOML file per language (`lexicons/en.toml` ...) and `common.toml`
(regular expressions for phone numbers, links and @handles). An operator directory of files
with the same names is merged on top: lists are extended, `remove` drops shipped phrases,
a notice or reason replaces the shipped one, and a file for a new language adds it.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from covey.safety.grooming._behaviours import Behaviour
from covey.safety.grooming._normalise import EMOJI_WORDS, fold_word, squeeze

WEAK_WEIGHT = 0.4  # a `weak` entry: a word that is often innocent on its own
_MAX_EXPANSIONS = 5000
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class LexiconError(ValueError):
    """A lexicon file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """One lexicon entry after expansion: the normalised parts a message must contain in
    order (one part for a plain phrase), and what a match means."""

    category: str  # a Behaviour value, or a mitigator's name
    source: str  # the entry as written in the lexicon, for the moderator's reason
    parts: tuple[str, ...]  # automaton keys: " word word " (or " word" for a prefix)
    weight: float
    mitigator: bool = False


@dataclass(frozen=True, slots=True)
class RegexPattern:
    """A language-independent pattern, matched on the original text."""

    behaviour: Behaviour
    name: str
    weight: float
    pattern: str


@dataclass
class Lexicon:
    """Everything the scorer knows about one language."""

    language: str
    patterns: list[Pattern] = field(default_factory=list)
    notices: dict[Behaviour, str] = field(default_factory=dict)
    reasons: dict[Behaviour, str] = field(default_factory=dict)
    mitigates: dict[str, frozenset[Behaviour]] = field(default_factory=dict)


@dataclass(frozen=True)
class Lexicons:
    """All languages plus the common regular expressions."""

    languages: Mapping[str, Lexicon]
    regexes: tuple[RegexPattern, ...]

    def notice(self, behaviour: Behaviour, language: str) -> str:
        """The child-facing notice for `behaviour`, in `language` when it has one."""
        lexicon = self.languages.get(language)
        if lexicon and behaviour in lexicon.notices:
            return lexicon.notices[behaviour]
        return self.languages["en"].notices.get(behaviour, "")

    def reason(self, behaviour: Behaviour, language: str) -> str:
        """The moderator-readable reason for `behaviour` (English unless overridden)."""
        lexicon = self.languages.get(language)
        if lexicon and behaviour in lexicon.reasons:
            return lexicon.reasons[behaviour]
        english = self.languages.get("en")
        return english.reasons.get(behaviour, behaviour.value) if english else behaviour.value


def load_lexicons(operator_dir: Path | None = None) -> Lexicons:
    """The shipped lexicons, with the operator's files in `operator_dir` merged on top."""
    documents = _shipped()
    if operator_dir is not None:
        if not operator_dir.is_dir():
            raise LexiconError(f"{operator_dir}: lexicon directory not found")
        for path in sorted(operator_dir.glob("*.toml")):
            documents.append((str(path), _parse(str(path), path.read_bytes())))
    return _build(documents)


def lexicons_from_documents(files: Mapping[str, str]) -> Lexicons:
    """The shipped lexicons with operator files given as text (`{"en.toml": ...}`): how
    on-device clients build the lexicons the server signed for them."""
    documents = _shipped()
    for name in sorted(files):
        if not name.endswith(".toml") or "/" in name or "\\" in name:
            raise LexiconError(f"{name!r}: a lexicon file is named LANGUAGE.toml")
        documents.append((name, _parse(name, files[name].encode("utf-8"))))
    return _build(documents)


def _shipped() -> list[tuple[str, dict[str, Any]]]:
    documents: list[tuple[str, dict[str, Any]]] = []
    shipped = resources.files("covey.safety.grooming") / "lexicons"
    for entry in sorted(shipped.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            documents.append((f"lexicons/{entry.name}", _parse(entry.name, entry.read_bytes())))
    return documents


def _build(documents: list[tuple[str, dict[str, Any]]]) -> Lexicons:
    raw: dict[str, dict[str, Any]] = {}
    regexes: list[RegexPattern] = []
    for name, document in documents:
        if Path(name).stem == "common":
            regexes.extend(_regexes(name, document))
        else:
            _merge(raw, name, document)
    languages = {code: _compile(code, data) for code, data in raw.items()}
    if "en" not in languages:
        raise LexiconError("no English lexicon: notices fall back to it")
    return Lexicons(languages, tuple(regexes))


def _parse(name: str, data: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LexiconError(f"{name}: not valid TOML: {exc}") from exc


def _regexes(name: str, document: dict[str, Any]) -> Iterable[RegexPattern]:
    for entry in document.get("regex", []):
        try:
            behaviour = Behaviour(entry["behaviour"])
            pattern = str(entry["pattern"])
            re.compile(pattern)
            yield RegexPattern(behaviour, str(entry.get("name", pattern)),
                               float(entry.get("weight", 1.0)), pattern)
        except (KeyError, ValueError, re.error) as exc:
            raise LexiconError(f"{name}: bad [[regex]] entry {entry!r}: {exc}") from exc


def _merge(raw: dict[str, dict[str, Any]], name: str, document: dict[str, Any]) -> None:
    """Fold one file into the per-language raw data (lists extend, texts replace)."""
    language = str(document.get("language") or Path(name).stem)
    into = raw.setdefault(language, {"words": {}, "behaviours": {}, "mitigators": {}})
    for word, values in document.get("words", {}).items():
        into["words"].setdefault(word, []).extend(_strings(name, f"words.{word}", values))
    for section in ("behaviours", "mitigators"):
        for key, table in document.get(section, {}).items():
            if section == "behaviours" and key not in Behaviour.__members__.values():
                known = ", ".join(b.value for b in Behaviour)
                raise LexiconError(f"{name}: unknown behaviour {key!r} (known: {known})")
            target = into[section].setdefault(key, {"phrases": [], "weak": [], "remove": [],
                                                    "mitigates": []})
            for list_key in ("phrases", "weak", "remove", "mitigates"):
                target[list_key].extend(
                    _strings(name, f"{section}.{key}.{list_key}", table.get(list_key, [])))
            for text_key in ("notice", "reason"):
                if text_key in table:
                    target[text_key] = str(table[text_key])


def _strings(name: str, where: str, values: Any) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise LexiconError(f"{name}: {where} must be a list of strings")
    return list(values)


def _compile(language: str, data: dict[str, Any]) -> Lexicon:
    words: dict[str, list[str]] = data["words"]
    lexicon = Lexicon(language)
    for key, table in data["behaviours"].items():
        behaviour = Behaviour(key)
        if "notice" in table:
            lexicon.notices[behaviour] = table["notice"]
        if "reason" in table:
            lexicon.reasons[behaviour] = table["reason"]
        removed = set(table["remove"])
        for entries, weight in ((table["phrases"], 1.0), (table["weak"], WEAK_WEIGHT)):
            for entry in dict.fromkeys(entries):
                if entry not in removed:
                    lexicon.patterns.extend(_expand(language, key, entry, weight, words, False))
    for key, table in data["mitigators"].items():
        try:
            lexicon.mitigates[key] = frozenset(Behaviour(b) for b in table["mitigates"])
        except ValueError as exc:
            raise LexiconError(f"{language}: mitigator {key!r}: {exc}") from exc
        removed = set(table["remove"])
        for entry in dict.fromkeys(table["phrases"]):
            if entry not in removed:
                lexicon.patterns.extend(_expand(language, key, entry, 1.0, words, True))
    return lexicon


# Elided words written with a space ("t as", "j ai", "l age") meet the text's
# "t'as", "j'ai", "l'âge", which normalisation joins into one word ("tas").
_ELIDED = re.compile(r"(?<= )(?:[cdjlmnst]|qu) (?=[a-z])")
_ODD = re.compile("[^\\w\\s'\u2019*{}.,?!\\-]")


def _elisions(form: str) -> list[str]:
    """`form` and, if it has elided words, the form with each joined to the next."""
    if not _ELIDED.search(form):
        return [form]
    return [form, _ELIDED.sub(lambda m: m.group().rstrip(), form)]


def _fold_literal(piece: str) -> str:
    """A literal piece of an entry, normalised, keeping the spaces that separate it from the
    placeholders around it (normalising the pieces once is much faster than every form)."""
    folded = fold_word(piece)
    if not folded:
        return " " if piece.strip() != piece or not piece else ""
    lead = " " if piece[:1].isspace() else ""
    trail = " " if piece[-1:].isspace() else ""
    return lead + folded + trail


def _expand(language: str, category: str, entry: str, weight: float,
            words: Mapping[str, list[str]], mitigator: bool) -> list[Pattern]:
    """Every concrete form of `entry`: placeholders filled, each part normalised."""
    odd = _ODD.findall(entry.replace("...", ""))
    if any(ch not in EMOJI_WORDS for ch in odd):
        raise LexiconError(f"{language}: {category}: {entry!r} has characters that "
                           "normalisation removes (" + "".join(odd) + ")")
    part_forms: list[list[str]] = []
    for part in entry.split("..."):
        part = part.strip()
        prefix = part.endswith("*")
        part = part.rstrip("*")
        names = _PLACEHOLDER.findall(part)
        for missing in (n for n in names if n not in words):
            raise LexiconError(f"{language}: {category}: {entry!r} uses unknown {{{missing}}}")
        literals = [_fold_literal(piece) for piece in _PLACEHOLDER.split(part)[::2]]
        forms = []
        for combo in itertools.product(*([fold_word(v) for v in words[n]] for n in names)):
            joined = literals[0] + "".join(v + lit for v, lit in zip(combo, literals[1:],
                                                                   strict=True))
            folded = " ".join(squeeze(joined).split())
            if folded:
                forms.append(f" {folded}" + ("" if prefix else " "))
        if not forms:
            raise LexiconError(f"{language}: {category}: {entry!r} matches nothing")
        forms = list(dict.fromkeys(v for form in forms for v in _elisions(form)))
        part_forms.append(list(dict.fromkeys(forms)))
    combos = list(itertools.islice(itertools.product(*part_forms), _MAX_EXPANSIONS + 1))
    if len(combos) > _MAX_EXPANSIONS:
        raise LexiconError(f"{language}: {category}: {entry!r} expands to too many forms")
    return [Pattern(category, entry, tuple(parts), weight, mitigator) for parts in combos]
