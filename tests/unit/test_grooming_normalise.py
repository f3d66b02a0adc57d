# ruff: noqa: RUF001  (look-alike letters are what these tests feed in)
"""Normalisation undoes the cheap obfuscations and keeps a map to the original text."""

from __future__ import annotations

import pytest

from covey.safety.grooming import Scorer, normalise


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer()


CASES = [
    ("spacing", "add me on w h a t s a p p", " ad me on whatsap "),
    ("spaced words", "a d d   m e   o n   t e l e g r a m", " ad me on telegram "),
    ("repeats", "sooooo secreeeet", " so secret "),
    ("leetspeak", "d0nt t3ll ur m0m", " dont tel ur mom "),
    ("trailing leet", "much0 gu5t45", " mucho gustas "),
    ("cyrillic", "ѕnарсhаt", " snapchat "),
    ("greek", "αdd mε", " ad me "),
    ("fullwidth", "ｗｈａｔｓａｐｐ", " whatsap "),
    ("math bold", "𝐭𝐞𝐥𝐞𝐠𝐫𝐚𝐦", " telegram "),
    ("emoji", "👻 me", " snapchat me "),
    ("diacritics", "¿Estás sola en casa?", " estas sola en casa "),
    ("punctuation inside", "s.n.a.p-c_h*a.t", " snapchat "),
    ("zero width", "whats\u200bapp", " whatsap "),
    ("elision", "t'as quel âge", " tas quel age "),
    ("leet first letter", "5n4p 1nsta", " snap insta "),
    ("slashes", "s/n/a/p", " snap "),
    ("circled", "ⓢⓝⓐⓟ", " snap "),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_normalised_form(text: str, expected: str) -> None:
    assert normalise(text).text == expected
    assert normalise(text, with_spans=False).text == expected


def test_ages_and_numbers_stay_digits() -> None:
    assert normalise("im 15 too, call 0612345678").text == " im 15 to cal 0612345678 "


def test_two_letters_alone_stay_words() -> None:
    assert normalise("y a mí qué").text == " y a mi que "


def test_spans_map_each_token_back() -> None:
    text = "Ｈｉ  w h a t s a p p 👻!"
    result = normalise(text)
    assert [text[a:b] for a, b in result.spans] == ["Ｈｉ", "w h a t s a p p", "👻"]


@pytest.mark.parametrize(("lang", "text", "behaviour"), [
    ("en", "ａｄｄ ｍｅ ｏｎ ｓｎａｐ", "off_platform"),
    ("en", "d.o.n.t t.e.l.l anyone", "secrecy"),
    ("en", "аrе u hоmе аlоnе", "supervision_probe"),
    ("en", "s3nd m3 a p1c", "photo_request"),
    ("en", "add me on the yellow ghost app", "off_platform"),
    ("en", "add me on snpchat", "off_platform"),
    ("es", "pá.sa.me tu nú.me.ro", "off_platform"),
    ("fr", "e n v o i e moi une photo", "photo_request"),
    ("de", "sag es n i e m a n d e m", "secrecy"),
    ("pt", "ta sozinhaaaa em casa??", "supervision_probe"),
])
def test_obfuscated_messages_still_match(scorer: Scorer, lang: str, text: str,
                                         behaviour: str) -> None:
    hits = scorer.matcher(lang).match(text)
    assert behaviour in {h.category for h in hits}
