"""Each behaviour is found in each language, written the way people write it (not the
lexicon entry verbatim), and ordinary chat finds nothing."""

from __future__ import annotations

import pytest

from covey.safety.grooming import Behaviour, Scorer

B = Behaviour
CASES: list[tuple[str, Behaviour, str]] = [
    ("en", B.OFF_PLATFORM, "this app is so laggy, hmu on snap"),
    ("en", B.SECRECY, "dont tell ur mom we talk ok"),
    ("en", B.ISOLATION, "honestly nobody understands you like i do"),
    ("en", B.AGE_PROBE, "how old r u btw"),
    ("en", B.LOCATION_PROBE, "what school do you go to?"),
    ("en", B.SUPERVISION_PROBE, "r ur parents home rn?"),
    ("en", B.PHOTO_REQUEST, "can u send me a pic of urself"),
    ("en", B.GIFTS, "i can get you robux if u want"),
    ("en", B.MEET_REQUEST, "we should meet up this weekend"),
    ("en", B.FLATTERY, "ur so mature for your age"),
    ("en", B.AGE_DECEPTION, "haha im 14 too"),
    ("en", B.PRESSURE, "why are you ignoring me"),
    ("es", B.OFF_PLATFORM, "oye pásame tu número y hablamos por ahí"),
    ("es", B.SECRECY, "no le digas a nadie porfa"),
    ("es", B.ISOLATION, "solo yo te entiendo de verdad"),
    ("es", B.AGE_PROBE, "y tú cuántos años tienes?"),
    ("es", B.LOCATION_PROBE, "a qué cole vas?"),
    ("es", B.SUPERVISION_PROBE, "estás sola en casa ahora?"),
    ("es", B.PHOTO_REQUEST, "mándame una foto tuya"),
    ("es", B.GIFTS, "te puedo pasar robux si quieres"),
    ("es", B.MEET_REQUEST, "y si quedamos el sábado?"),
    ("es", B.FLATTERY, "eres muy madura para tu edad"),
    ("es", B.AGE_DECEPTION, "yo también tengo 13 jaja"),
    ("es", B.PRESSURE, "por qué me ignoras??"),
    ("fr", B.OFF_PLATFORM, "t'as snap ? ajoute moi"),
    ("fr", B.SECRECY, "dis rien à personne stp"),
    ("fr", B.ISOLATION, "personne te comprend comme moi"),
    ("fr", B.AGE_PROBE, "t'as quel âge ?"),
    ("fr", B.LOCATION_PROBE, "tu habites où exactement"),
    ("fr", B.SUPERVISION_PROBE, "t'es seule chez toi là ?"),
    ("fr", B.PHOTO_REQUEST, "envoie moi une photo de toi"),
    ("fr", B.GIFTS, "je peux t'acheter des v-bucks"),
    ("fr", B.MEET_REQUEST, "on se voit samedi ?"),
    ("fr", B.FLATTERY, "t'es trop mature pour ton âge"),
    ("fr", B.AGE_DECEPTION, "moi aussi j'ai 14 ans"),
    ("fr", B.PRESSURE, "pourquoi tu m'ignores"),
    ("de", B.OFF_PLATFORM, "hast du snap? add mich"),
    ("de", B.SECRECY, "sag es niemandem ok"),
    ("de", B.ISOLATION, "keiner versteht dich so wie ich"),
    ("de", B.AGE_PROBE, "wie alt bist du eigentlich"),
    ("de", B.LOCATION_PROBE, "auf welche schule gehst du"),
    ("de", B.SUPERVISION_PROBE, "bist du grad allein zu hause?"),
    ("de", B.PHOTO_REQUEST, "schick mir mal ein bild von dir"),
    ("de", B.GIFTS, "ich kann dir robux schenken"),
    ("de", B.MEET_REQUEST, "wollen wir uns mal treffen?"),
    ("de", B.FLATTERY, "du bist so reif für dein alter"),
    ("de", B.AGE_DECEPTION, "ich bin auch 14 lol"),
    ("de", B.PRESSURE, "warum ignorierst du mich"),
    ("pt", B.OFF_PLATFORM, "tem zap? me passa teu número"),
    ("pt", B.SECRECY, "não conta pra ninguém tá"),
    ("pt", B.ISOLATION, "ninguém te entende como eu"),
    ("pt", B.AGE_PROBE, "quantos anos vc tem?"),
    ("pt", B.LOCATION_PROBE, "onde vc mora?"),
    ("pt", B.SUPERVISION_PROBE, "ta sozinha em casa?"),
    ("pt", B.PHOTO_REQUEST, "me manda uma foto sua"),
    ("pt", B.GIFTS, "posso te dar robux"),
    ("pt", B.MEET_REQUEST, "bora se encontrar sábado?"),
    ("pt", B.FLATTERY, "vc é muito madura pra sua idade"),
    ("pt", B.AGE_DECEPTION, "eu também tenho 14 kkk"),
    ("pt", B.PRESSURE, "pq vc ta me ignorando"),
]

ORDINARY = {
    "en": ["how was school today", "did you finish the maths homework?", "gg that was fun"],
    "es": ["qué tal el examen", "mañana hay entreno a las 6", "jajaja qué risa"],
    "fr": ["t'as fini les devoirs ?", "le match était trop bien", "mdr trop drôle"],
    "de": ["hast du die hausaufgaben?", "das spiel war voll gut", "haha voll lustig"],
    "pt": ["como foi a prova?", "o jogo foi muito bom", "kkkk muito engraçado"],
}


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer()


def risks(scorer: Scorer, lang: str, text: str) -> set[str]:
    return {h.category for h in scorer.matcher(lang).match(text) if not h.mitigator}


@pytest.mark.parametrize(("lang", "behaviour", "text"), CASES,
                         ids=[f"{c[0]}-{c[1].value}" for c in CASES])
def test_behaviour_found(scorer: Scorer, lang: str, behaviour: Behaviour, text: str) -> None:
    assert behaviour.value in risks(scorer, lang, text)


def test_every_behaviour_and_language_has_a_case() -> None:
    assert {(lang, b) for lang, b, _ in CASES} == {
        (lang, b) for lang in ORDINARY for b in Behaviour}


@pytest.mark.parametrize("lang", sorted(ORDINARY))
def test_ordinary_chat_finds_nothing(scorer: Scorer, lang: str) -> None:
    for text in ORDINARY[lang]:
        assert risks(scorer, lang, text) == set(), text


@pytest.mark.parametrize("lang", sorted(ORDINARY))
def test_every_behaviour_has_a_notice_in_every_language(scorer: Scorer, lang: str) -> None:
    lexicon = scorer.lexicons.languages[lang]
    assert set(lexicon.notices) == set(Behaviour)
    for behaviour in Behaviour:
        assert scorer.lexicons.reason(behaviour, lang)


def test_signal_span_is_in_the_original_text(scorer: Scorer) -> None:
    text = "Hey!! Add me on  S.N.A.P  ok"
    [hit] = [h for h in scorer.matcher("en").match(text) if h.category == "off_platform"]
    assert text[hit.start:hit.end] == "Add me on  S.N.A.P"


def test_negated_secrecy_is_not_a_guardian_mitigator(scorer: Scorer) -> None:
    hits = scorer.matcher("en").match("don't tell your mum about this")
    assert {h.category for h in hits} == {"secrecy"}
