"""Embedding search: cosine similarity between the query's vector and each document's.

Vectors come from any runtime embedder (`runtime.registry.open_embedder`: a GGUF in
llama.cpp, an Ollama tag, `openai:MODEL@URL`), L2-normalised, so a dot product is the
cosine. They sit in one numpy matrix: exact search, fine to a few hundred thousand
documents on one machine (qdrant.py is the path beyond). `save`/`load` keep the vectors,
so documents are embedded once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from borealis_local.corpus import Document
from borealis_local.errors import InvalidRequestError
from borealis_local.retrieval import document_files
from borealis_local.retrieval.base import (
    ScoredDocument,
    as_documents,
    checked_k,
    checked_query,
    searchable_text,
)
from borealis_local.retrieval.ranking import top_k
from borealis_local.runtime.embeddings import Embedder

INDEX_FILE = "borealis-embedding-index.json"
VECTORS_FILE = "vectors.npy"
DOCUMENTS_FILE = "documents.jsonl"


class EmbeddingRetriever:
    """Exact cosine search over documents embedded by `embedder`, `batch_size` texts
    per call. `progress(done, total)` is called after each batch."""

    def __init__(
        self,
        documents: Iterable[Document | str],
        embedder: Embedder,
        *,
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
    ):
        import numpy

        self.documents = as_documents(documents, what="EmbeddingRetriever")
        self.embedder = embedder
        texts = [searchable_text(doc) for doc in self.documents]
        vectors = []
        for start in range(0, len(texts), batch_size):
            vectors.extend(embedder.embed(texts[start : start + batch_size]))
            if progress is not None:
                progress(min(start + batch_size, len(texts)), len(texts))
        self.vectors = numpy.asarray(vectors, dtype="float32")

    @classmethod
    def from_documents(
        cls, documents: Iterable[Document | str], embedder: Embedder, **kwargs
    ) -> EmbeddingRetriever:
        return cls(documents, embedder, **kwargs)

    def search(self, query: str, k: int = 4) -> list[ScoredDocument]:
        """The k documents nearest the query, nearest first (score: cosine similarity)."""
        import numpy

        query, k = checked_query(query), checked_k(k)
        vector = numpy.asarray(self.embedder.embed_query(query), dtype="float32")
        if vector.shape != self.vectors.shape[1:]:
            raise InvalidRequestError(
                f"The query's vector has {vector.shape[0]} dimensions, the documents' "
                f"{self.vectors.shape[1]}: search with the embedder the index was built with "
                f"({self.embedder.model})"
            )
        scores = self.vectors @ vector
        return [ScoredDocument(self.documents[i], float(scores[i])) for i in top_k(scores, k)]

    def save(self, directory: str | Path) -> Path:
        """Write the vectors and documents into `directory` (created if missing)."""
        import numpy

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        numpy.save(directory / VECTORS_FILE, self.vectors)
        document_files.write_documents(self.documents, directory / DOCUMENTS_FILE)
        meta = {
            "kind": "borealis-local embedding index",
            "model": self.embedder.model,
            "documents": len(self.documents),
            "dimensions": int(self.vectors.shape[1]),
        }
        (directory / INDEX_FILE).write_text(json.dumps(meta), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path, embedder: Embedder) -> EmbeddingRetriever:
        """An index `save` wrote, searched with `embedder` (the model it was built with;
        another model's vectors would not compare)."""
        import numpy

        directory = Path(directory)
        path = directory / INDEX_FILE
        if not path.is_file():
            raise InvalidRequestError(
                f"{directory} holds no saved embedding index (no {INDEX_FILE}); build one "
                "with EmbeddingRetriever.from_documents(...).save(directory)"
            )
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta["model"] != embedder.model:
            raise InvalidRequestError(
                f"{directory} was embedded with {meta['model']}, not {embedder.model}: "
                "load it with that embedder, or build the index again"
            )
        retriever = cls.__new__(cls)
        retriever.embedder = embedder
        retriever.vectors = numpy.load(directory / VECTORS_FILE)
        retriever.documents = document_files.read_documents(directory / DOCUMENTS_FILE)
        if len(retriever.documents) != len(retriever.vectors):
            raise InvalidRequestError(
                f"{directory} is damaged: {len(retriever.documents)} documents, "
                f"{len(retriever.vectors)} vectors; build and save the index again"
            )
        return retriever
