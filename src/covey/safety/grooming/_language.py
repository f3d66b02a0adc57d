"""Which lexicon a conversation needs: py3langid (offline, 4.5 MB, naive Bayes over byte
n-grams) restricted to the languages we have lexicons for, run once on the whole
conversation's text. Short chat lines alone are too little; the conversation is enough."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

# The first characters of a conversation are enough, and bound the cost.
_SAMPLE_CHARS = 2000


@lru_cache(maxsize=8)
def _identifier(languages: tuple[str, ...]) -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier  # loads a model: lazily

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    supported = [code for code in languages if code in identifier.nb_classes]
    identifier.set_languages(supported or None)
    return identifier


def detect_language(texts: Iterable[str], languages: Iterable[str],
                    default: str = "en") -> str:
    """The most likely of `languages` for these messages, or `default` when there is no
    text to go on (or the detector knows none of them)."""
    wanted = tuple(sorted(set(languages)))
    sample, size = [], 0
    for text in texts:
        sample.append(text)
        size += len(text) + 1
        if size >= _SAMPLE_CHARS:
            break
    joined = "\n".join(sample).strip()
    if not joined or not wanted:
        return default
    code = str(_identifier(wanted).classify(joined)[0])
    return code if code in wanted else default
