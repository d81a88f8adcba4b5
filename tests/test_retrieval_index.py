"""The retrieval engines: the keyword index on bm25s (save/load), embedding search,
reciprocal-rank fusion, ranking ties, and the metrics on hand-computed examples."""

from __future__ import annotations

import json
import math

import numpy
import pytest
from retrieval_support import ChosenVectorsEmbedder

from borealis_local.corpus import Document, load_corpus
from borealis_local.errors import InvalidRequestError
from borealis_local.retrieval import KeywordRetriever
from borealis_local.retrieval.base import ScoredDocument
from borealis_local.retrieval.embedding import EmbeddingRetriever
from borealis_local.retrieval.fusion import HybridRetriever, reciprocal_rank_fusion
from borealis_local.retrieval.metrics import mean_scores, ndcg_at, recall_at, reciprocal_rank
from borealis_local.retrieval.ranking import top_k

QUESTIONS = [
    "Hvor langt fra huset må teltet stå?",
    "Kor djup er Sognefjorden?",
    "Kven fann på å tilsetje fløyte i mysosten?",
    "kvantedatamaskin",  # matches nothing: all scores 0
]


# --- ranking -----------------------------------------------------------------------


def test_top_k_is_best_first_with_ties_in_document_order():
    scores = numpy.array([0.0, 2.0, 1.0, 2.0, 0.0, 1.0], dtype="float32")
    assert top_k(scores, 3) == [1, 3, 2]  # the tie at the cut: the earlier document
    assert top_k(scores, 6) == [1, 3, 2, 5, 0, 4]
    assert top_k(scores, 10) == [1, 3, 2, 5, 0, 4]
    assert top_k(numpy.zeros(4), 2) == [0, 1]
    assert top_k(numpy.array([-0.5, 0.3, -0.1]), 3) == [1, 2, 0]  # cosines may be < 0


# --- the keyword index on disk ----------------------------------------------------------


def test_a_saved_index_loads_and_searches_exactly_as_the_one_saved(tmp_path):
    built = KeywordRetriever.from_documents(load_corpus())
    built.save(tmp_path / "index")
    loaded = KeywordRetriever.load(tmp_path / "index")
    assert loaded.documents == built.documents
    for question in QUESTIONS:
        assert loaded.search(question, k=5) == built.search(question, k=5)
    mapped = KeywordRetriever.load(tmp_path / "index", mmap=True)
    assert mapped.search(QUESTIONS[0], k=5) == built.search(QUESTIONS[0], k=5)


def test_loading_what_is_not_an_index_says_how_to_make_one(tmp_path):
    with pytest.raises(InvalidRequestError, match=r"no saved keyword index.*\.save\(directory\)"):
        KeywordRetriever.load(tmp_path)


def test_an_index_from_another_analyzer_version_must_be_rebuilt(tmp_path):
    KeywordRetriever.from_documents(load_corpus()).save(tmp_path)
    meta_path = tmp_path / "borealis-keyword-index.json"
    meta = json.loads(meta_path.read_text())
    meta["analyzer_version"] = 0
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InvalidRequestError, match="analyzer version 0.*build and save"):
        KeywordRetriever.load(tmp_path)


def test_an_index_whose_documents_went_missing_is_called_damaged(tmp_path):
    KeywordRetriever.from_documents(load_corpus()).save(tmp_path)
    documents = tmp_path / "documents.jsonl"
    documents.write_text("".join(documents.read_text().splitlines(keepends=True)[:5]))
    with pytest.raises(InvalidRequestError, match="damaged: 5 documents where the index has 12"):
        KeywordRetriever.load(tmp_path)


def test_document_ids_must_be_unique():
    twice = [Document("a", "", "nb", "Fjell."), Document("a", "", "nb", "Hav.")]
    with pytest.raises(InvalidRequestError, match="id 'a' is used twice"):
        KeywordRetriever(twice)


def test_a_document_with_only_stopwords_is_indexed_and_never_matches():
    retriever = KeywordRetriever(["og i på", "Fjellet er høgt."])
    hits = retriever.search("fjell", k=2)
    assert [hit.document.id for hit in hits] == ["1", "0"]
    assert hits[0].score > 0 and hits[1].score == 0


def test_bm25_scores_are_lucenes_formula():
    # Two documents; "fjord" in the first only: idf = ln(1 + (2 - 1 + 0.5) / (1 + 0.5)).
    retriever = KeywordRetriever(["fjord fjord hav", "hav skog"], k1=1.5, b=0.75)
    idf = math.log(1 + (2 - 1 + 0.5) / (1 + 0.5))
    length, average = 3, (3 + 2) / 2
    tf = 2 / (2 + 1.5 * (1 - 0.75 + 0.75 * length / average))
    assert retriever.search("fjord", k=1)[0].score == pytest.approx(idf * tf, rel=1e-5)


# --- embedding search ----------------------------------------------------------------


def _documents():
    return [
        Document("galdhopiggen", "", "nn", "Galdhøpiggen er det høgaste fjellet i Noreg."),
        Document(
            "gaustatoppen",
            "",
            "nn",
            "Fjellet Gaustatoppen i Telemark er høgt: eit høgt, bratt fjell.",
        ),
        Document("mjosa", "", "nb", "Mjøsa er Norges største innsjø."),
        Document("glomma", "", "nb", "Glomma er den lengste elva."),
    ]


def test_embedding_search_ranks_by_cosine_and_embeds_in_batches():
    documents = _documents()
    vectors = {doc.text: [1.0, float(i)] for i, doc in enumerate(documents)}
    vectors["spørsmål"] = [0.0, 1.0]
    embedder = ChosenVectorsEmbedder(vectors)
    retriever = EmbeddingRetriever(documents, embedder, batch_size=3)
    assert [len(batch) for batch in embedder.calls] == [3, 1]
    hits = retriever.search("spørsmål", k=4)
    assert [hit.document.id for hit in hits] == ["glomma", "mjosa", "gaustatoppen", "galdhopiggen"]
    assert hits[0].score == pytest.approx(3 / math.sqrt(10))
    assert hits[-1].score == pytest.approx(0.0)


def test_embedding_index_saves_and_loads_with_the_same_model_only(tmp_path):
    documents = _documents()
    vectors = {doc.text: [1.0, float(i)] for i, doc in enumerate(documents)} | {"q": [0.0, 1.0]}
    built = EmbeddingRetriever(documents, ChosenVectorsEmbedder(vectors))
    built.save(tmp_path)
    again = ChosenVectorsEmbedder({"q": [0.0, 1.0]})
    loaded = EmbeddingRetriever.load(tmp_path, again)
    assert loaded.search("q", k=4) == built.search("q", k=4)
    assert again.calls == [["q"]]  # the documents were not embedded again
    with pytest.raises(InvalidRequestError, match="embedded with chosen-vectors, not other"):
        EmbeddingRetriever.load(tmp_path, ChosenVectorsEmbedder({}, model="other"))


def test_a_query_vector_of_another_size_is_a_clear_error():
    documents = _documents()[:2]
    vectors = {doc.text: [1.0, 0.0] for doc in documents} | {"q": [1.0, 0.0, 0.0]}
    retriever = EmbeddingRetriever(documents, ChosenVectorsEmbedder(vectors))
    with pytest.raises(InvalidRequestError, match="3 dimensions, the documents' 2"):
        retriever.search("q")


# --- fusion ---------------------------------------------------------------------------


def _hit(doc_id: str) -> ScoredDocument:
    return ScoredDocument(Document(doc_id, "", "nb", doc_id), 1.0)


def test_rrf_scores_are_weight_over_k_plus_rank_summed():
    fused = reciprocal_rank_fusion(
        [[_hit("a"), _hit("b")], [_hit("b"), _hit("c")]], weights=[1.0, 0.5], rrf_k=60
    )
    assert [hit.document.id for hit in fused] == ["b", "a", "c"]
    assert [hit.score for hit in fused] == pytest.approx([1 / 62 + 0.5 / 61, 1 / 61, 0.5 / 62])


def test_rrf_rejects_weights_that_do_not_fit():
    with pytest.raises(InvalidRequestError, match="2 rankings but 1 weights"):
        reciprocal_rank_fusion([[], []], weights=[1.0])
    with pytest.raises(InvalidRequestError, match="≥ 0"):
        HybridRetriever(None, None, weights=(1.0, -1.0))


def test_hybrid_finds_what_neither_retriever_ranks_first():
    """Galdhøpiggen is second for both: keyword search prefers the document that repeats
    the query's words, the (chosen) vectors a document with no word in common."""
    documents = _documents()
    question = "Kor høgt er fjellet Gaustatoppen eller Galdhøpiggen?"
    vectors = {
        documents[0].text: [0.9, 0.4359],  # galdhopiggen: second nearest
        documents[1].text: [0.0, 1.0],  # gaustatoppen: farthest
        documents[2].text: [1.0, 0.0],  # mjosa: nearest, no word in common
        documents[3].text: [0.6, 0.8],
        question: [1.0, 0.0],
    }
    keyword = KeywordRetriever(documents)
    embedding = EmbeddingRetriever(documents, ChosenVectorsEmbedder(vectors))
    hybrid = HybridRetriever(keyword, embedding)
    by_keyword = [hit.document.id for hit in keyword.search(question, k=4) if hit.score > 0]
    by_embedding = [hit.document.id for hit in embedding.search(question, k=4)]
    assert by_keyword == ["gaustatoppen", "galdhopiggen"]
    assert by_embedding == ["mjosa", "galdhopiggen", "glomma", "gaustatoppen"]
    hits = hybrid.search(question, k=2)
    assert [hit.document.id for hit in hits] == ["galdhopiggen", "gaustatoppen"]
    assert hits[0].score == pytest.approx(2 / 62)


# --- metrics on hand-computed examples ---------------------------------------------------


def test_metrics_for_one_relevant_document():
    ranked = ["a", "b", "c", "d"]
    assert recall_at(ranked, {"c"}, 1) == 0 and recall_at(ranked, {"c"}, 5) == 1
    assert reciprocal_rank(ranked, {"c"}) == pytest.approx(1 / 3)
    assert ndcg_at(ranked, {"c"}) == pytest.approx(0.5)  # 1 / log2(4)
    assert reciprocal_rank(ranked, {"z"}) == 0 and ndcg_at(ranked, {"z"}) == 0


def test_metrics_for_two_relevant_documents():
    ranked = ["a", "b", "c", "d"]
    assert recall_at(ranked, {"a", "d"}, 1) == 0.5
    assert reciprocal_rank(ranked, {"a", "d"}) == 1
    # (1 + 1/log2(5)) / (1 + 1/log2(3)) = 1.430677 / 1.630930
    assert ndcg_at(ranked, {"a", "d"}) == pytest.approx(0.877215, abs=1e-6)


def test_mean_scores_average_over_questions_and_count_only_the_top_ten():
    beyond = [str(i) for i in range(10)] + ["x"]  # x is eleventh: not found
    scores = mean_scores([(["x", "y"], {"x"}), (beyond, {"x"})])
    assert scores.questions == 2
    assert scores.recall_at_1 == 0.5 and scores.recall_at_10 == 0.5
    assert scores.mrr_at_10 == 0.5 and scores.ndcg_at_10 == 0.5
