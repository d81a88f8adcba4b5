"""What every retriever shares: the hit it returns, the documents it takes, and the
checks on a search's arguments (one wording of each error for all of them)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from borealis_local.corpus import Document
from borealis_local.errors import InvalidRequestError
from borealis_local.prompts import detect_language


@dataclass(frozen=True)
class ScoredDocument:
    """A search hit: the document and its score (higher is better; what the number means
    depends on the retriever: BM25, cosine similarity, fused reciprocal rank)."""

    document: Document
    score: float


class Retriever(Protocol):
    """Anything that ranks documents for a query: keyword, embedding, hybrid, Postgres."""

    def search(self, query: str, k: int = 4) -> list[ScoredDocument]: ...


def as_documents(items: Iterable[Document | str], *, what: str) -> list[Document]:
    """Documents as given, plain strings as documents with ids "0", "1", ... (their
    position) and a detected language. Ids must be unique: hits are told apart by id."""
    documents = [_as_document(item, i, what) for i, item in enumerate(items)]
    if not documents:
        raise InvalidRequestError(f"{what} needs at least one document to search.")
    seen: set[str] = set()
    for doc in documents:
        if doc.id in seen:
            raise InvalidRequestError(
                f"{what}: the document id {doc.id!r} is used twice; give each document its own id."
            )
        seen.add(doc.id)
    return documents


def _as_document(item: Document | str, index: int, what: str) -> Document:
    if isinstance(item, Document):
        return item
    if isinstance(item, str):
        return Document(id=str(index), title="", language=detect_language(item), text=item)
    raise InvalidRequestError(
        f"{what} takes Documents or strings; item {index} is a {type(item).__name__}."
    )


def checked_query(query: object) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequestError(
            "The search query is empty: give a few words to search for, "
            "e.g. 'allemannsretten telt'."
        )
    return query


def checked_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidRequestError(f"k must be a whole number ≥ 1, not {k!r}.")
    return k


def searchable_text(doc: Document) -> str:
    """What a retriever indexes of a document: its title, then its text."""
    return f"{doc.title}\n{doc.text}" if doc.title else doc.text

