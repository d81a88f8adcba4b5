"""detect_language on a labelled set written for this project.

The set: short questions, everyday sentences, sentences that share most of their
words across Bokmål and Nynorsk (often near-twins of each other), and English
sentences full of Norwegian names. Every sentence is correct in its own language only.
The bar is the issue's: at least 95 % right overall; per-language accuracy is printed
(pytest -s) and given in any failure message.
"""

from __future__ import annotations

import pytest

from borealis_local.corpus import load_corpus
from borealis_local.errors import InvalidRequestError
from borealis_local.prompts import UnknownLanguageError, detect_language, resolve_language

BOKMAL = [
    "Hva er klokka?",
    "Hvordan kommer jeg meg til Mo i Rana med tog?",
    "Jeg vet ikke hvem som skrev denne boka.",
    "Nasjonalbiblioteket tar vare på alt som blir gitt ut i Norge.",
    "Hun har bodd i Bergen i mange år, men flyttet hjem i fjor.",
    "Kan du gi meg et sammendrag av artikkelen?",
    "Det var mye folk på dugnaden i går.",
    "Hvorfor er fjordene så dype?",
    "Vi må rydde garasjen før vi drar på ferie, ellers blir det ikke plass til bilen.",
    "Har jeg lov til å sette opp telt her?",
    "Jeg skulle gjerne hatt en kopp kaffe.",
    "Bussen fra Oslo var forsinket igjen.",
    "Hvem vant valget i 2021?",
    "Dette er noe av det fineste jeg har sett.",
    "Barna løp ned til stranden så fort de kunne.",
    "Kommunen har ikke råd til å bygge ny skole.",
    "Hvilken bok anbefaler du?",
    "Vi har også fått nye naboer.",
    "Det snødde hele natten, så skolen ble stengt.",
    "Når åpner biblioteket på lørdager?",
    "Han sier at han ikke har tid.",
    "Hvor mye koster en billett til Tromsø?",
    "Takk for hjelpen, jeg hadde ikke klart det alene.",
    "Selv om det regnet, gikk vi tur i skogen.",
    "Skriv en kort tittel og ingress til saken.",
    "Hva nå?",
    "Hvorfor det?",
    "Jeg også.",
    "Kommer du i morgen?",
    "Ikke gjør det!",
    "Hun leser avisen hver morgen.",
    "Boka handler om en jente fra Lofoten.",
    "Det finnes mange dialekter i Norge, men bare to skriftspråk.",
]

NYNORSK = [
    "Kva er klokka?",
    "Korleis kjem eg meg til Mo i Rana med tog?",
    "Eg veit ikkje kven som skreiv denne boka.",
    "Nasjonalbiblioteket tek vare på alt som vert gitt ut i Noreg.",
    "Ho har budd i Bergen i mange år, men flytta heim i fjor.",
    "Kan du gje meg eit samandrag av artikkelen?",
    "Det var mykje folk på dugnaden i går.",
    "Kvifor er fjordane så djupe?",
    "Me må rydde garasjen før me dreg på ferie, elles blir det ikkje plass til bilen.",
    "Har eg lov til å setje opp telt her?",
    "Eg skulle gjerne hatt ein kopp kaffi.",
    "Bussen frå Oslo var forseinka att.",
    "Kven vann valet i 2021?",
    "Dette er noko av det finaste eg har sett.",
    "Borna sprang ned til stranda så fort dei kunne.",
    "Kommunen har ikkje råd til å byggje ny skule.",
    "Kva for ei bok tilrår du?",
    "Me har òg fått nye naboar.",
    "Det snødde heile natta, så skulen vart stengd.",
    "Når opnar biblioteket på laurdagar?",
    "Han seier at han ikkje har tid.",
    "Kor mykje kostar ein billett til Tromsø?",
    "Takk for hjelpa, eg hadde ikkje klart det åleine.",
    "Sjølv om det regna, gjekk vi tur i skogen.",
    "Skriv ein kort tittel og ingress til saka.",
    "Kva no?",
    "Kvifor det?",
    "Eg òg.",
    "Kjem du i morgon?",
    "Ikkje gjer det!",
    "Ho les avisa kvar morgon.",
    "Boka handlar om ei jente frå Lofoten.",
    "Det finst mange dialektar i Noreg, men berre to skriftspråk.",
    "Er denne teksten skriven på bokmål eller nynorsk?",
]

ENGLISH = [
    "What time is it?",
    "How do I get to Mo i Rana by train?",
    "I don't know who wrote this book.",
    "The National Library keeps everything published in Norway.",
    "She lived in Bergen for many years but moved home last year.",
    "Can you give me a summary of the article?",
    "There were lots of people at the dugnad yesterday.",
    "Why are the fjords so deep?",
    "We have to tidy the garage before the weekend.",
    "Is camping allowed here?",
    "Tromsø is known for the northern lights.",
    "Borealis runs locally with Ollama.",
    "Who won the election in 2021?",
    "Nynorsk and Bokmål are both official written standards.",
    "The children ran down to the beach.",
    "Please write a short headline.",
    "Which book would you recommend?",
    "Brunost is a sweet brown cheese.",
    "Hurtigruten sails from Bergen to Kirkenes.",
    "When does the library open on Saturdays?",
    "He says he has no time.",
    "How much is a ticket to Tromsø?",
    "Thanks, that was really helpful.",
    "Dugnad means voluntary community work.",
    "Allemannsretten gives everyone access to nature.",
    "Why not?",
    "Me too.",
    "Are you coming tomorrow?",
    "Don't do that!",
    "She reads the paper every morning.",
    "The book is about a girl from Lofoten.",
    "There are many dialects in Norway, but only two written standards.",
    "Is this text written in Bokmål or Nynorsk?",
]

LABELLED = (
    [(s, "nb") for s in BOKMAL] + [(s, "nn") for s in NYNORSK] + [(s, "en") for s in ENGLISH]
)


def _accuracy() -> tuple[float, dict[str, float], list[str]]:
    wrong = [
        f"{label} -> {detect_language(text)}: {text}"
        for text, label in LABELLED
        if detect_language(text) != label
    ]
    per_language = {
        code: sum(detect_language(t) == code for t, label in LABELLED if label == code)
        / sum(label == code for _, label in LABELLED)
        for code in ("nb", "nn", "en")
    }
    return 1 - len(wrong) / len(LABELLED), per_language, wrong


def test_the_labelled_set_is_large_enough_and_has_no_duplicates():
    assert len(LABELLED) >= 60
    assert all(len(group) >= 20 for group in (BOKMAL, NYNORSK, ENGLISH))
    assert len({text for text, _ in LABELLED}) == len(LABELLED)


def test_accuracy_is_at_least_95_percent():
    overall, per_language, wrong = _accuracy()
    report = (
        f"overall {overall:.1%} on {len(LABELLED)} sentences; "
        + ", ".join(f"{code} {share:.1%}" for code, share in per_language.items())
        + "".join(f"\n  wrong: {line}" for line in wrong)
    )
    print(f"\nlanguage detection: {report}")
    assert overall >= 0.95, report
    assert min(per_language.values()) >= 0.90, report


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ikke", "nb"),
        ("ikkje", "nn"),
        ("Eg", "nn"),
        ("jeg", "nb"),
        ("Korleis?", "nn"),
        ("Hvordan?", "nb"),
        ("òg", "nn"),
        ("the", "en"),
    ],
)
def test_a_single_marker_word_decides(text, expected):
    assert detect_language(text, default="en" if expected != "en" else "nb") == expected


@pytest.mark.parametrize("text", ["", "   ", "OK", "Takk!", "Oslo", "2024", "?!"])
@pytest.mark.parametrize("default", ["nb", "nn", "en"])
def test_short_or_ambiguous_text_falls_back_to_the_default(text, default):
    assert detect_language(text, default=default) == default


def test_norwegian_that_does_not_tell_nb_from_nn_gives_a_norwegian_default():
    shared = "Vi har også fått nye naboer."  # Bokmål, but no word marks it so
    assert detect_language(shared, default="nn") == "nn"
    assert detect_language(shared, default="en") == "nb"


def test_text_is_read_as_nfc_and_apostrophes_are_one():
    decomposed = "Eg gjer det o\u0300g."  # òg with a combining grave accent
    assert detect_language(decomposed, default="nb") == "nn"
    assert detect_language("I don\u2019t know.", default="nb") == "en"


def test_every_corpus_document_is_detected_as_its_language():
    for document in load_corpus():
        assert detect_language(document.text) == document.language, document.id


def test_resolve_language_passes_codes_through_and_detects_auto():
    assert resolve_language("nn", "What is this?") == "nn"
    assert resolve_language(" NB ", "Kva er dette?") == "nb"
    assert resolve_language("auto", "Kva er dette?") == "nn"
    assert resolve_language("auto", "What is this?") == "en"


@pytest.mark.parametrize("bad", ["no", "de", "nob", "", None])
def test_resolve_language_rejects_unknown_codes_with_the_accepted_values(bad):
    with pytest.raises(UnknownLanguageError) as caught:
        resolve_language(bad, "Hva er dette?")
    assert isinstance(caught.value, InvalidRequestError)
    assert "nb, nn, en or auto" in str(caught.value)


def test_detect_language_rejects_an_unknown_default_and_non_text():
    with pytest.raises(UnknownLanguageError):
        detect_language("Hva er dette?", default="sv")
    with pytest.raises(InvalidRequestError):
        detect_language(None)  # type: ignore[arg-type]
