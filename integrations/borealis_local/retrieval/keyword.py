"""The keyword index: our Norwegian analyzer (analyzer.py) on bm25s's BM25.

bm25s keeps the index as sparse matrices of precomputed BM25 scores (Lucene's
formula, k1 = 1.5, b = 0.75 by default) and saves them to and loads them from disk, so a
library is indexed once, not at every start. The analyzer turns each document and query
into terms; bm25s only sees term ids.

    >>> from borealis_local.corpus import load_corpus
    >>> retriever = KeywordRetriever.from_documents(load_corpus())
    >>> [hit.document.id for hit in retriever.search("Hvor langt fra huset må teltet stå?", k=1)]
    ['allemannsretten']

The index cannot grow in place (bm25s builds its matrices once): to add documents,
build a new one from `retriever.documents` plus the new ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from borealis_local.corpus import Document
from borealis_local.errors import InvalidRequestError
from borealis_local.prompts import detect_language
from borealis_local.retrieval import document_files
from borealis_local.retrieval.analyzer import ANALYZER_VERSION, term, terms, words
from borealis_local.retrieval.base import (
    ScoredDocument,
    as_documents,
    checked_k,
    checked_query,
    searchable_text,
)
from borealis_local.retrieval.ranking import top_k

INDEX_FILE = "borealis-keyword-index.json"
DOCUMENTS_FILE = "documents.jsonl"
BM25_DIR = "bm25s"


def _bm25s():
    try:
        import bm25s
    except ImportError:
        raise InvalidRequestError(
            "The keyword index needs bm25s: pip install 'borealis-local[retrieval]'"
        ) from None
    return bm25s


class KeywordRetriever:
    """BM25 over documents (or plain strings, which get ids "0", "1", ...), with the
    project's Norwegian analyzer. `progress(done, total)` is called while indexing."""

    def __init__(
        self,
        documents: Iterable[Document | str],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        progress: Callable[[int, int], None] | None = None,
    ):
        self.documents = as_documents(documents, what="KeywordRetriever")
        self.k1, self.b = k1, b
        self._vocabulary: dict[str, int] = {}
        self._word_ids: dict[str, dict[str, int]] = {}  # per language: word -> term id, -1
        term_ids = [self._ids(doc, progress, i) for i, doc in enumerate(self.documents)]
        self._bm25 = _bm25s().BM25(k1=k1, b=b)
        # An empty term gives documents with no terms a row; bm25s adds it if missing.
        tokenized = _bm25s().tokenization.Tokenized(ids=term_ids, vocab=self._vocabulary)
        self._bm25.index(tokenized, show_progress=False)
        del self._word_ids  # only for indexing; queries go through `terms`

    @classmethod
    def from_documents(cls, documents: Iterable[Document | str], **kwargs) -> KeywordRetriever:
        return cls(documents, **kwargs)

    def _ids(self, doc: Document, progress, index: int) -> list[int]:
        """The document's term ids (new terms get the next id). The hot loop of indexing:
        one dict lookup per word once a word has been seen."""
        if progress is not None and index % 1000 == 0:
            progress(index, len(self.documents))
        known = self._word_ids.setdefault(doc.language, {})
        ids = []
        for word in words(searchable_text(doc)):
            found = known.get(word)
            if found is None:
                found = known[word] = self._term_id(term(word, doc.language))
            if found >= 0:
                ids.append(found)
        return ids

    def _term_id(self, found: str) -> int:
        if not found:
            return -1  # a stopword
        return self._vocabulary.setdefault(found, len(self._vocabulary))

    def search(self, query: str, k: int = 4) -> list[ScoredDocument]:
        """The k best documents for the query, best first (fewer when there are fewer
        documents). Documents that match nothing score 0 and keep corpus order."""
        query, k = checked_query(query), checked_k(k)
        query_terms = dict.fromkeys(terms(query, detect_language(query)))  # each once
        ids = [self._vocabulary[t] for t in query_terms if t in self._vocabulary]
        if ids:
            scores = self._bm25.get_scores_from_ids(ids)
        else:
            import numpy

            scores = numpy.zeros(len(self.documents), dtype="float32")
        return [ScoredDocument(self.documents[i], float(scores[i])) for i in top_k(scores, k)]

    # --- on disk --------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write the index and its documents into `directory` (created if missing)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._bm25.save(directory / BM25_DIR, show_progress=False)
        document_files.write_documents(self.documents, directory / DOCUMENTS_FILE)
        (directory / INDEX_FILE).write_text(
            json.dumps(
                {
                    "kind": "borealis-local keyword index",
                    "analyzer_version": ANALYZER_VERSION,
                    "documents": len(self.documents),
                    "k1": self.k1,
                    "b": self.b,
                },
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, mmap: bool = False) -> KeywordRetriever:
        """An index `save` wrote. `mmap=True` leaves the score matrices on disk and reads
        them as searched (for indexes larger than memory)."""
        directory = Path(directory)
        meta = _index_meta(directory)
        retriever = cls.__new__(cls)
        retriever.k1, retriever.b = meta["k1"], meta["b"]
        retriever._bm25 = _bm25s().BM25.load(directory / BM25_DIR, mmap=mmap, show_progress=False)
        # bm25s saves the term ids it was given (plus its empty term, never a query term).
        retriever._vocabulary = retriever._bm25.vocab_dict
        retriever.documents = document_files.read_documents(directory / DOCUMENTS_FILE)
        if len(retriever.documents) != meta["documents"]:
            raise InvalidRequestError(
                f"{directory} is damaged: {len(retriever.documents)} documents where the "
                f"index has {meta['documents']}; build and save the index again"
            )
        return retriever


def _index_meta(directory: Path) -> dict:
    path = directory / INDEX_FILE
    if not path.is_file():
        raise InvalidRequestError(
            f"{directory} holds no saved keyword index (no {INDEX_FILE}); build one with "
            "KeywordRetriever.from_documents(...).save(directory)"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidRequestError(
            f"{path} cannot be read ({error}); save the index again"
        ) from None
    if meta.get("analyzer_version") != ANALYZER_VERSION:
        raise InvalidRequestError(
            f"{directory} was saved with analyzer version {meta.get('analyzer_version')}, "
            f"this borealis-local has {ANALYZER_VERSION}: build and save the index again"
        )
    return meta
