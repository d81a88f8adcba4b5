"""QdrantEmbeddingRetriever on Qdrant's local engine (qdrant-client in-process: in memory
and on disk; the same client API a Qdrant server takes), with a hashed bag-of-words test
double for vectors a test can reason about, and the real stand-in model through llama.cpp
(slow tests: plumbing only, the stand-in is no embedding model)."""

from __future__ import annotations

import dataclasses
import hashlib
import socket

import pytest
import qdrant_client

from borealis_local.corpus import Document, load_corpus
from borealis_local.errors import InvalidRequestError, ServerUnavailableError
from borealis_local.retrieval.analyzer import terms
from borealis_local.retrieval.base import Retriever, searchable_text
from borealis_local.retrieval.embedding import EmbeddingRetriever
from borealis_local.retrieval.qdrant import QdrantEmbeddingRetriever, open_client, point_id
from borealis_local.runtime.embeddings import Embedder

# A client for a URL asks the server its version and warns (later) when it cannot: the
# test of a server that is down means that.
pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version")


class HashedWordsEmbedder(Embedder):
    """A test double for an embedding model: the counts of a text's analyzer terms,
    hashed into `dimensions` slots (the base class L2-normalises them). Texts that share
    terms are near each other, so a test knows which document a question should find."""

    kind = "test-double"

    def __init__(self, dimensions: int = 256, model: str = "hashed-words"):
        super().__init__(model)
        self.dimensions = dimensions

    def _embed(self, texts: list[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            vector = [0.0] * self.dimensions
            for term in terms(text):
                digest = hashlib.blake2b(term.encode(), digest_size=8).digest()
                vector[int.from_bytes(digest, "big") % self.dimensions] += 1.0
            vectors.append(vector)
        return vectors


@pytest.fixture(scope="module")
def embedder() -> HashedWordsEmbedder:
    return HashedWordsEmbedder()


@pytest.fixture(scope="module")
def retriever(embedder):
    with QdrantEmbeddingRetriever.from_documents(load_corpus(), embedder) as retriever:
        yield retriever


def ids(hits) -> list[str]:
    return [hit.document.id for hit in hits]


# --- the test double itself ---------------------------------------------------------------


def test_the_double_puts_shared_words_close(embedder):
    fjord, same, other = embedder.embed(["Fjordane er djupe", "djupe fjordar", "Brunost er søt"])
    assert sum(a * b for a, b in zip(fjord, same, strict=True)) > 0.9
    assert sum(a * b for a, b in zip(fjord, other, strict=True)) < 0.1


# --- searching ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Kor djup er Sognefjorden?", "fjordar"),
        ("Når startet Hurtigruten, og hvem startet den?", "hurtigruten"),
        ("Kor mange stavkyrkjer står att i Noreg?", "stavkyrkjer"),
        ("Hvor ble det første samiske landsmøtet holdt?", "samefolkets-dag"),
    ],
)
def test_a_question_finds_its_document(retriever, question, expected):
    hits = retriever.search(question, k=3)
    assert expected in ids(hits), [(hit.document.id, hit.score) for hit in hits]
    assert len(hits) == 3 and len(set(ids(hits))) == 3
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1.0001 for s in scores)


def test_the_payload_gives_back_the_whole_document(retriever):
    corpus = {doc.id: doc for doc in load_corpus()}
    hits = retriever.search("fjord", k=50)
    assert len(hits) == 12
    assert {hit.document.id: hit.document for hit in hits} == corpus


def test_scores_are_the_cosines_exact_search_finds(embedder, retriever):
    # Qdrant's nearest neighbours are the project's exact numpy search's, scores and all.
    exact = EmbeddingRetriever.from_documents(load_corpus(), embedder)
    for question in ("Kva er dugnad?", "nordlys og sola", "Ivar Aasen grammatikk"):
        ours, theirs = retriever.search(question, k=5), exact.search(question, k=5)
        assert [round(h.score, 4) for h in ours] == [round(h.score, 4) for h in theirs]
        assert set(ids(ours)) <= {doc.id for doc in load_corpus()}


def test_it_is_a_retriever_the_eval_command_can_use(embedder):
    def top_id(retriever: Retriever, question: str) -> str:
        return retriever.search(question, k=1)[0].document.id

    with QdrantEmbeddingRetriever.from_documents(load_corpus(), embedder) as retriever:
        assert top_id(retriever, "Kor djup er Sognefjorden?") == "fjordar"


# --- writing --------------------------------------------------------------------------------


def test_adding_the_same_documents_again_changes_nothing(embedder):
    corpus = load_corpus()

    def scored(retriever):  # float32 rounding and equal scores' order aside
        return sorted((h.document.id, round(h.score, 5)) for h in retriever.search("fjord", k=50))

    with QdrantEmbeddingRetriever.from_documents(corpus, embedder) as retriever:
        before = scored(retriever)
        retriever.add_documents(corpus)
        assert len(retriever) == 12
        assert scored(retriever) == before


def test_a_document_added_again_with_new_text_is_replaced(embedder):
    corpus = load_corpus()
    with QdrantEmbeddingRetriever.from_documents(corpus, embedder) as retriever:
        changed = dataclasses.replace(corpus[0], text="Reinsdyr beiter på vidda om vinteren.")
        retriever.add_documents([changed])
        assert len(retriever) == 12
        assert retriever.search("reinsdyr på vidda", k=1)[0].document == changed


def test_replace_leaves_only_the_new_documents_even_from_another_embedder(embedder):
    with QdrantEmbeddingRetriever.from_documents(load_corpus(), embedder) as first:
        wider = HashedWordsEmbedder(dimensions=512, model="wider")
        second = QdrantEmbeddingRetriever.from_documents(
            load_corpus()[:3], wider, client=first.client, replace=True
        )
        assert len(second) == 3
        assert {hit.document.id for hit in second.search("fjord", k=12)} == {
            doc.id for doc in load_corpus()[:3]
        }


def test_replace_never_deletes_a_collection_it_did_not_make(embedder):
    client = open_client(":memory:")
    client.create_collection(
        "theirs", vectors_config=qdrant_client.models.VectorParams(size=4, distance="Cosine")
    )
    with pytest.raises(InvalidRequestError, match="not made by borealis-local"):
        QdrantEmbeddingRetriever.from_documents(
            load_corpus(), embedder, client=client, collection="theirs", replace=True
        )
    assert client.collection_exists("theirs")


def test_point_ids_are_uuids_fixed_by_the_document_id():
    assert point_id("fjordar") == point_id("fjordar") != point_id("nynorsk")
    assert len(point_id("fjordar")) == 36


def test_a_collection_on_disk_is_searched_after_a_reopen(tmp_path, embedder):
    client = qdrant_client.QdrantClient(path=str(tmp_path / "qdrant"))
    QdrantEmbeddingRetriever.from_documents(
        load_corpus(), embedder, client=client, collection="library"
    ).close()
    reopened = qdrant_client.QdrantClient(path=str(tmp_path / "qdrant"))
    with QdrantEmbeddingRetriever(reopened, "library", embedder) as retriever:
        assert len(retriever) == 12
        assert ids(retriever.search("Kor djup er Sognefjorden?", k=1)) == ["fjordar"]


def test_progress_is_reported_per_batch(embedder):
    seen = []
    QdrantEmbeddingRetriever.from_documents(
        load_corpus(),
        embedder,
        batch_size=5,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(5, 12), (10, 12), (12, 12)]


def test_plain_strings_are_documents_too(embedder):
    retriever = QdrantEmbeddingRetriever.from_documents(
        ["Brunost er søt.", "Fjordane er djupe og lange."], embedder
    )
    hit = retriever.search("Kor djupe er fjordane?", k=1)[0]
    assert hit.document == Document(
        id="1", title="", language="nn", text="Fjordane er djupe og lange."
    )


# --- errors -----------------------------------------------------------------------------------


def test_a_missing_collection_says_how_to_make_it(embedder):
    retriever = QdrantEmbeddingRetriever(qdrant_client.QdrantClient(":memory:"), "none", embedder)
    with pytest.raises(InvalidRequestError, match="no collection 'none'.*from_documents"):
        retriever.search("fjord")


def test_another_embedder_is_refused(retriever):
    other = QdrantEmbeddingRetriever(
        retriever.client, retriever.collection, HashedWordsEmbedder(model="another-model")
    )
    with pytest.raises(InvalidRequestError, match="embedded with 'hashed-words'"):
        other.search("fjord")
    with pytest.raises(InvalidRequestError, match="embedded with 'hashed-words'"):
        other.add_documents(load_corpus())


def test_vectors_of_another_size_are_refused(retriever):
    wider = QdrantEmbeddingRetriever(
        retriever.client, retriever.collection, HashedWordsEmbedder(dimensions=512)
    )
    with pytest.raises(InvalidRequestError, match="256 dimensions.*gives 512"):
        wider.search("fjord")


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_server_that_is_down_is_a_clear_error(embedder, closed_port):
    url = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(ServerUnavailableError, match=f"not reachable at {url}.*docker run"):
        QdrantEmbeddingRetriever.from_documents(
            load_corpus(), embedder, client=open_client(url, timeout=5)
        )


def test_open_client_takes_memory_or_a_directory(tmp_path, embedder):
    memory = QdrantEmbeddingRetriever.from_documents(
        load_corpus(), embedder, client=open_client(":memory:")
    )
    assert len(memory) == 12
    on_disk = open_client(str(tmp_path / "index"))
    QdrantEmbeddingRetriever.from_documents(load_corpus(), embedder, client=on_disk).close()
    assert (tmp_path / "index").is_dir()  # a URL: see the test of a server that is down


@pytest.mark.parametrize(("query", "k"), [("", 3), ("  ", 3), ("fjord", 0), ("fjord", 2.5)])
def test_bad_arguments_are_clear_errors(retriever, query, k):
    with pytest.raises(InvalidRequestError):
        retriever.search(query, k=k)


# --- a real model (the stand-in, through llama.cpp) ----------------------------------------

# Six documents are enough for plumbing, and each text costs seconds on 2 busy cores.
REAL_DOCUMENTS = 6
EMBEDDER_ARGS = {"n_ctx": 512, "n_threads": 2}  # the corpus's longest text is 177 tokens


@pytest.fixture(scope="module")
def real_embedder(gemma_gguf, llama_cpp):
    """The stand-in in llama.cpp, opened once through the registry's shared models, so
    BorealisEmbeddings (which asks the registry too) gets the same one."""
    from borealis_local.runtime import registry

    yield registry.shared_embedder(str(gemma_gguf), **EMBEDDER_ARGS)
    registry.SHARED.close("embedding")


@pytest.mark.slow
def test_real_vectors_from_llama_cpp(real_embedder):
    corpus = load_corpus()[:REAL_DOCUMENTS]
    retriever = QdrantEmbeddingRetriever.from_documents(corpus, real_embedder)
    exact = EmbeddingRetriever.from_documents(corpus, real_embedder)
    info = retriever.client.get_collection(retriever.collection)
    assert info.config.params.vectors.size == 640  # Gemma 3 270M's width
    # A document's own text is nearest itself: the same vector, cosine 1.
    for doc in corpus[:3]:
        hits = retriever.search(searchable_text(doc), k=3)
        assert hits[0].document == doc and hits[0].score > hits[1].score
    question = "Kor djup er Sognefjorden?"
    ours, theirs = retriever.search(question, k=10), exact.search(question, k=10)
    assert len(ours) == REAL_DOCUMENTS == len(set(ids(ours)))
    assert [round(h.score, 3) for h in ours] == [round(h.score, 3) for h in theirs]


@pytest.mark.slow
def test_langchain_reads_and_writes_the_same_collections(gemma_gguf, real_embedder):
    import langchain_qdrant

    from langchain_borealis import BorealisEmbeddings, example_corpus_documents

    embeddings = BorealisEmbeddings(model=str(gemma_gguf), embedder_kwargs=EMBEDDER_ARGS)
    ours = QdrantEmbeddingRetriever.from_documents(load_corpus()[:REAL_DOCUMENTS], real_embedder)
    # Ours, written here, read through LangChain's store: the same hits in order.
    store = langchain_qdrant.QdrantVectorStore(
        client=ours.client,
        collection_name=ours.collection,
        embedding=embeddings,
        content_payload_key="text",
    )
    question = "Hvor ble det første samiske landsmøtet holdt?"
    theirs = store.similarity_search_with_score(question, k=4)
    assert [doc.page_content for doc, _ in theirs] == [
        hit.document.text for hit in ours.search(question, k=4)
    ]
    # LangChain's own collection from LangChain documents: a plain vector store.
    # (Qdrant's point ids are UUIDs, so the documents' own ids go through point_id.)
    documents = example_corpus_documents()[:REAL_DOCUMENTS]
    written = langchain_qdrant.QdrantVectorStore.from_documents(
        documents,
        embeddings,
        ids=[point_id(doc.id) for doc in documents],
        location=":memory:",
        collection_name="lc",
    )
    found = written.similarity_search_with_score(question, k=3)
    assert len(found) == 3
    assert [score for _, score in found] == sorted((s for _, s in found), reverse=True)
    assert {doc.metadata["_id"] for doc, _ in found} <= {point_id(d.id) for d in documents}
