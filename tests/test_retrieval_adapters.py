"""Hybrid (and keyword) retrievers in LangChain and LlamaIndex: they translate types
only, so they must rank exactly as the project's own retrievers do."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document as LangChainDocument
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_tests.integration_tests import RetrieversIntegrationTests
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import TextNode

from langchain_borealis import HybridRetriever, example_corpus_documents
from llama_index.retrievers.borealis import BorealisHybridRetriever, BorealisKeywordRetriever

# The constructed case of tests/test_retrieval_index.py: the keyword ranking puts
# gaustatoppen first, the vectors mjosa; only the fusion puts galdhopiggen first.
QUESTION = "Kor høgt er fjellet Gaustatoppen eller Galdhøpiggen?"
TEXTS = {
    "galdhopiggen": ("Galdhøpiggen er det høgaste fjellet i Noreg.", [0.9, 0.4359]),
    "gaustatoppen": ("Fjellet Gaustatoppen i Telemark er høgt: eit høgt, bratt fjell.", [0.0, 1.0]),
    "mjosa": ("Mjøsa er Norges største innsjø.", [1.0, 0.0]),
    "glomma": ("Glomma er den lengste elva.", [0.6, 0.8]),
}
VECTORS = {text: vector for text, vector in TEXTS.values()} | {QUESTION: [1.0, 0.0]}
EXPECTED = ["galdhopiggen", "gaustatoppen", "mjosa"]


class ChosenVectors(Embeddings):
    """A LangChain Embeddings double with the test's vectors; records query calls."""

    def __init__(self):
        self.queries: list[str] = []

    def embed_documents(self, texts):
        return [VECTORS[t] for t in texts]

    def embed_query(self, text):
        self.queries.append(text)
        return VECTORS[text]


class ChosenVectorsModel(BaseEmbedding):
    """The same double as a LlamaIndex embedding model."""

    model_name: str = "chosen-vectors"

    def _get_text_embedding(self, text):
        return VECTORS[text]

    def _get_query_embedding(self, query):
        return VECTORS[query]

    async def _aget_query_embedding(self, query):
        return VECTORS[query]


def test_langchain_hybrid_ranks_as_the_fusion_does_and_returns_the_documents_given():
    documents = [
        LangChainDocument(page_content=text, metadata={"id": doc_id, "source": "test"})
        for doc_id, (text, _) in TEXTS.items()
    ]
    embeddings = ChosenVectors()
    found = HybridRetriever(documents=documents, embeddings=embeddings, k=3).invoke(QUESTION)
    assert [doc.metadata["id"] for doc in found] == EXPECTED
    assert all(any(doc is given for given in documents) for doc in found)
    assert embeddings.queries == [QUESTION]  # the query went through embed_query


def test_langchain_hybrid_weights_reach_the_fusion():
    documents = [
        LangChainDocument(page_content=t, metadata={"id": i}) for i, (t, _) in TEXTS.items()
    ]
    # All weight on the vectors: the embedding ranking alone.
    found = HybridRetriever(documents=documents, embeddings=ChosenVectors(), weights=(0.0, 1.0),
                            k=2).invoke(QUESTION)  # fmt: skip
    assert [doc.metadata["id"] for doc in found] == ["mjosa", "galdhopiggen"]


def test_llama_index_hybrid_and_keyword_rank_as_the_project_does():
    nodes = [TextNode(text=text, id_=doc_id) for doc_id, (text, _) in TEXTS.items()]
    hybrid = BorealisHybridRetriever(nodes, embed_model=ChosenVectorsModel(), similarity_top_k=3)
    assert [hit.node.node_id for hit in hybrid.retrieve(QUESTION)] == EXPECTED
    keyword = BorealisKeywordRetriever(nodes, similarity_top_k=4)
    hits = keyword.retrieve(QUESTION)
    assert [hit.node.node_id for hit in hits] == ["gaustatoppen", "galdhopiggen"]  # matches only
    assert hits[0].score > hits[1].score > 0


def test_llama_index_reads_title_and_language_from_metadata():
    nodes = [
        TextNode(
            text="Han skreiv grammatikken.", metadata={"title": "Ivar Aasen", "language": "nn"}
        ),
        TextNode(text="Hun skrev romaner.", metadata={"title": "Sigrid Undset", "language": "nb"}),
    ]
    [hit] = BorealisKeywordRetriever(nodes, similarity_top_k=1).retrieve("Kven var Aasen?")
    assert hit.node is nodes[0]


def test_the_core_document_ids_are_positions_so_duplicate_metadata_ids_are_fine():
    same = [LangChainDocument(page_content=t, metadata={"id": "x"}) for t, _ in TEXTS.values()]
    found = HybridRetriever(documents=same, embeddings=ChosenVectors(), k=1).invoke(QUESTION)
    assert found[0].page_content == TEXTS["galdhopiggen"][0]


class TestHybridRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's own retriever tests (with its deterministic fake embeddings)."""

    @property
    def retriever_constructor(self) -> type[HybridRetriever]:
        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"documents": example_corpus_documents(),
                "embeddings": DeterministicFakeEmbedding(size=16)}  # fmt: skip

    @property
    def retriever_query_example(self) -> str:
        return "Kor djup er Sognefjorden?"


@pytest.mark.parametrize("k", [1, 5])
def test_langchain_hybrid_returns_at_most_k(k):
    retriever = HybridRetriever(documents=example_corpus_documents(),
                                embeddings=DeterministicFakeEmbedding(size=16), k=k)  # fmt: skip
    assert len(retriever.invoke("Kor djup er Sognefjorden?")) == k
