"""Retrieval for RAG chains: keyword search (BM25, no model), hybrid search (BM25 and
embeddings fused by reciprocal rank), and the example corpus.

Both wrap the project's retrievers (`borealis_local.retrieval`), whose analyzer
normalises Bokmål, Nynorsk and English the same way for documents and queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr

from borealis_local import corpus, retrieval
from borealis_local.errors import InvalidRequestError
from borealis_local.prompts import detect_language
from borealis_local.retrieval.embedding import EmbeddingRetriever
from borealis_local.retrieval.fusion import RRF_K
from borealis_local.retrieval.fusion import HybridRetriever as _Hybrid
from borealis_local.runtime.embeddings import Embedder


def example_corpus_documents() -> list[Document]:
    """The project's example corpus (a dozen short Bokmål and Nynorsk documents) as
    LangChain Documents, with metadata id, title and language."""
    return [
        Document(
            page_content=doc.text,
            metadata={"id": doc.id, "title": doc.title, "language": doc.language},
            id=doc.id,
        )
        for doc in corpus.load_corpus()
    ]


class KeywordRetriever(BaseRetriever):
    """BM25 keyword search over documents; no model, no network.

    Returns up to `k` documents, best first, and only documents that share at least one
    search term with the query (so a question the documents do not touch retrieves
    nothing, and a RAG chain can say so without guessing).

    Example:
        ```python
        from langchain_borealis import KeywordRetriever, example_corpus_documents

        retriever = KeywordRetriever(documents=example_corpus_documents(), k=3)
        retriever.invoke("Hvor langt fra huset må teltet stå?")
        retriever.invoke("Kven var Ivar Aasen?", k=1)
        ```

    A document's metadata may carry `title` (searched too) and `language` (nb, nn or en:
    picks the stopwords; detected from the text when missing).
    """

    model_config = ConfigDict(extra="forbid")

    documents: list[Document]
    """The documents to search."""

    k: int = 4
    """How many documents to return at most."""

    _index: retrieval.KeywordRetriever = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._index = retrieval.KeywordRetriever(
            [_searchable(doc, i) for i, doc in enumerate(self.documents)]
        )

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], metadatas: Sequence[dict] | None = None, **kwargs: Any
    ) -> KeywordRetriever:
        """A retriever over plain texts, with optional metadata per text."""
        texts = list(texts)
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        if len(metadatas) != len(texts):
            raise InvalidRequestError(
                f"{len(texts)} texts but {len(metadatas)} metadatas: give one dict per text"
            )
        documents = [
            Document(page_content=text, metadata=dict(metadata))
            for text, metadata in zip(texts, metadatas, strict=True)
        ]
        return cls(documents=documents, **kwargs)

    @classmethod
    def from_documents(cls, documents: Iterable[Document], **kwargs: Any) -> KeywordRetriever:
        """A retriever over LangChain Documents."""
        return cls(documents=list(documents), **kwargs)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        hits = self._index.search(query, k=k or self.k)
        # The hit's document id is its position in self.documents (see _searchable).
        return [self.documents[int(hit.document.id)] for hit in hits if hit.score > 0]


class HybridRetriever(BaseRetriever):
    """Keyword (BM25) and embedding search, fused by reciprocal rank (RRF).

    Each document scores the sum of weight / (rrf_k + rank) over the two rankings, so a
    document both find near the top wins over one that only one of them ranks first:
    keyword search catches names and rare words, embeddings catch paraphrase.

    Example:
        ```python
        from langchain_borealis import BorealisEmbeddings, HybridRetriever
        from langchain_borealis import example_corpus_documents

        retriever = HybridRetriever(
            documents=example_corpus_documents(),
            embeddings=BorealisEmbeddings(model="bge-m3"),  # any LangChain Embeddings
            k=3,
        )
        retriever.invoke("Kor djup er fjorden ved Balestrand?")
        ```

    The documents are embedded once, when the retriever is made.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    documents: list[Document]
    """The documents to search."""

    embeddings: Embeddings
    """Embeds the documents and the queries (`BorealisEmbeddings` or any other)."""

    k: int = 4
    """How many documents to return at most."""

    weights: tuple[float, float] = (1.0, 1.0)
    """RRF weights of the keyword and the embedding ranking."""

    rrf_k: float = RRF_K
    """RRF's k (60, the paper's): larger flattens the weight of the first ranks."""

    _index: _Hybrid = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        searchable = [_searchable(doc, i) for i, doc in enumerate(self.documents)]
        self._index = _Hybrid(
            retrieval.KeywordRetriever(searchable),
            EmbeddingRetriever(searchable, _AsEmbedder(self.embeddings)),
            weights=self.weights,
            rrf_k=self.rrf_k,
        )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        hits = self._index.search(query, k=k or self.k)
        return [self.documents[int(hit.document.id)] for hit in hits]


class _AsEmbedder(Embedder):
    """LangChain Embeddings in the runtime's Embedder form: documents and queries each
    through their own call, as LangChain separates them."""

    kind = "langchain"

    def __init__(self, embeddings: Embeddings):
        super().__init__(type(embeddings).__name__)
        self.embeddings = embeddings

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return self.embeddings.embed_documents(texts)

    def _embed_query(self, text: str) -> list[float]:
        return self.embeddings.embed_query(text)


def _searchable(doc: Document, index: int) -> corpus.Document:
    """A LangChain Document in the form the keyword index reads, keyed by position."""
    language = doc.metadata.get("language") or detect_language(doc.page_content)
    return corpus.Document(
        id=str(index),
        title=str(doc.metadata.get("title") or ""),
        language=language,
        text=doc.page_content,
    )
