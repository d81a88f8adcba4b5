"""The example corpus and the keyword retriever (BM25, no model)."""

from __future__ import annotations

import pytest

from borealis_local.corpus import Document, load_corpus
from borealis_local.errors import InvalidRequestError
from borealis_local.retrieval import KeywordRetriever, ScoredDocument, stem, terms


@pytest.fixture(scope="module")
def retriever() -> KeywordRetriever:
    return KeywordRetriever(load_corpus())


# --- the corpus ----------------------------------------------------------------------


def test_the_corpus_is_a_dozen_short_documents_in_bokmal_and_nynorsk():
    corpus = load_corpus()
    assert len(corpus) == 12
    assert all(isinstance(doc, Document) for doc in corpus)
    assert len({doc.id for doc in corpus}) == 12
    assert {doc.language for doc in corpus} == {"nb", "nn"}
    assert sum(doc.language == "nn" for doc in corpus) >= 4
    for doc in corpus:
        assert doc.title and doc.text == doc.text.strip()
        assert 40 <= len(doc.text.split()) <= 150, doc.id
        assert "\n" not in doc.text and "\\" not in doc.text, doc.id


def test_load_corpus_returns_a_fresh_list():
    first = load_corpus()
    first.clear()
    assert len(load_corpus()) == 12


# --- normalisation ---------------------------------------------------------------------


def test_terms_keep_aeoa_fold_other_accents_and_drop_stopwords():
    assert terms("Ærlig ØL på Åndalsnes!") == [stem("ærlig"), "øl", stem("åndalsnes")]
    assert terms("Idé og kafé", "nb") == terms("ide og kafe", "nb")
    assert terms("Sámi soga lávlla") == [stem("sami"), stem("soga"), stem("lavlla")]
    decomposed = "Ba\u030al"  # "Bål" with a combining ring above
    assert terms(decomposed) == terms("bål") == ["bål"]


def test_stopwords_follow_the_language():
    assert terms("Eg veit ikkje kva dugnad er", "nn") == ["dugnad"]
    assert terms("Jeg vet ikke hva dugnad er", "nb") == ["dugnad"]
    assert terms("What is the dugnad", "en") == ["dugnad"]


def test_the_light_stemmer_joins_bokmal_and_nynorsk_inflections():
    inflections = ["fjord", "fjorden", "fjorder", "fjordene", "fjordar", "fjordane"]
    assert {stem(word) for word in inflections} == {"fjord"}
    assert stem("nasjonalbibliotekets") == stem("nasjonalbiblioteket") == "nasjonalbibliotek"
    assert stem("året") == "år" and stem("by") == "by"


# --- ranking ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Hvor langt fra huset må teltet stå?", "allemannsretten"),
        ("Når er det forbudt å gjøre opp bål i skogen?", "allemannsretten"),
        ("Når startet Hurtigruten, og hvem startet den?", "hurtigruten"),
        ("Hvorfor ble dugnad kåret til nasjonalord?", "dugnad"),
        ("Hvilken farge har nordlyset, og hva lager det?", "nordlys"),
        ("Hvor ble det første samiske landsmøtet holdt?", "samefolkets-dag"),
        ("Kva heitte grammatikken som Ivar Aasen gav ut?", "ivar-aasen"),
        ("Kor djup er Sognefjorden?", "fjordar"),
        ("Kven fann på å tilsetje fløyte i mysosten?", "brunost"),
        ("Kor mange stavkyrkjer står att i Noreg?", "stavkyrkjer"),
        ("Kva for ein isbre ligg nær Mo i Rana?", "mo-i-rana"),
        ("Kor stor del av elevane har nynorsk som hovudmål?", "nynorsk"),
        ("Hvor lagrer Nasjonalbiblioteket samlingen sin?", "nasjonalbiblioteket"),
        ("How deep is Sognefjorden?", "fjordar"),
    ],
)
def test_the_obviously_right_document_ranks_first(retriever, query, expected):
    hits = retriever.search(query, k=3)
    assert hits[0].document.id == expected, [(h.document.id, round(h.score, 2)) for h in hits]
    assert hits[0].score > hits[1].score


def test_a_query_across_bokmal_and_nynorsk_forms_still_finds_the_document(retriever):
    # Bokmål words for a Nynorsk document: brunosten -> brunost, Gudbrandsdalen.
    assert retriever.search("Hvem fant opp brunosten i Gudbrandsdalen?")[0].document.id == "brunost"


@pytest.mark.parametrize("k", [1, 3, 12])
def test_search_returns_k_results_best_first(retriever, k):
    hits = retriever.search("nynorsk og bokmål", k=k)
    assert len(hits) == k
    assert all(isinstance(hit, ScoredDocument) for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_k_beyond_the_corpus_returns_every_document_once(retriever):
    hits = retriever.search("fjord", k=50)
    assert len(hits) == 12 and len({hit.document.id for hit in hits}) == 12


def test_a_query_that_matches_nothing_scores_zero_in_corpus_order(retriever):
    hits = retriever.search("kvantedatamaskin", k=3)
    assert [hit.score for hit in hits] == [0.0, 0.0, 0.0]
    assert [hit.document.id for hit in hits] == [doc.id for doc in load_corpus()[:3]]


def test_plain_strings_are_searchable_too():
    retriever = KeywordRetriever(
        ["Brunost er søt.", "Fjordane er djupe og lange.", "The library opens at nine."]
    )
    hits = retriever.search("Kor djupe er fjordane?", k=2)
    assert hits[0].document.id == "1" and hits[0].document.text.startswith("Fjordane")
    assert hits[0].document.language == "nn"
    assert retriever.search("When does the library open?", k=1)[0].document.id == "2"


@pytest.mark.parametrize("query", ["", "   \n\t"])
def test_an_empty_query_is_a_clear_error(retriever, query):
    with pytest.raises(InvalidRequestError, match="query is empty"):
        retriever.search(query)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_k_must_be_a_positive_whole_number(retriever, k):
    with pytest.raises(InvalidRequestError, match="k must be"):
        retriever.search("fjord", k=k)


def test_a_retriever_needs_documents_it_can_read():
    with pytest.raises(InvalidRequestError, match="at least one document"):
        KeywordRetriever([])
    with pytest.raises(InvalidRequestError, match="item 1 is a int"):
        KeywordRetriever(["Tekst.", 42])
