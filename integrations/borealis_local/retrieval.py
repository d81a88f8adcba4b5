"""A keyword retriever that needs no model: BM25 over the example corpus or any texts.

Light Norwegian normalisation, the same for documents and queries: Unicode NFC,
lower case, accents folded except on æ, ø and å (idé = ide, å stays å), each
language's function words dropped as stopwords, and a light stemmer that strips the
commonest Bokmål and Nynorsk endings (fjorden, fjordar, fjordane -> fjord).

    >>> from borealis_local.corpus import load_corpus
    >>> retriever = KeywordRetriever(load_corpus())
    >>> [hit.document.id for hit in retriever.search("Hvor langt fra huset må teltet stå?", k=1)]
    ['allemannsretten']
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from borealis_local.corpus import Document
from borealis_local.errors import InvalidRequestError
from borealis_local.prompts import LANGUAGES, detect_language, function_words

_TERM = re.compile(r"[^\W_]+")  # runs of letters and digits; æ, ø, å are letters
_KEPT_LETTERS = frozenset("æøå")
# Inflection endings of nouns, verbs and adjectives in both written standards, longest
# first. Light on purpose: a stem must keep two letters, and only one ending goes.
_ENDINGS = tuple(
    sorted(
        "hetene heten heita heit het ende ande ene ane ast est er ar en et a e".split(),
        key=len,
        reverse=True,
    )
)


@dataclass(frozen=True)
class ScoredDocument:
    """A search hit: the document and its BM25 score (higher is better, 0 = no match)."""

    document: Document
    score: float


def _without_accents(letter: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", letter) if not unicodedata.combining(c))


@lru_cache(maxsize=65536)
def _fold(word: str) -> str:
    """The word without accents, except that æ, ø and å stay letters of their own."""
    return "".join(c if c in _KEPT_LETTERS else _without_accents(c) for c in word)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light stem: genitive -s, then one inflection ending (dugnadens -> dugnad)."""
    if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 2:
            return word[: -len(ending)]
    return word


def _stopwords(language: str | None) -> frozenset[str]:
    if language in LANGUAGES:
        return function_words(language)
    return frozenset().union(*(function_words(code) for code in LANGUAGES))


def terms(text: str, language: str | None = None) -> list[str]:
    """The search terms of a text: normalised, stopwords of `language` dropped (of every
    language when None), stemmed."""
    stopwords = _stopwords(language)
    words = _TERM.findall(unicodedata.normalize("NFC", text).lower())
    return [stem(_fold(word)) for word in words if word not in stopwords]


def _as_document(item: Document | str, index: int) -> Document:
    if isinstance(item, Document):
        return item
    if isinstance(item, str):
        return Document(id=str(index), title="", language=detect_language(item), text=item)
    raise InvalidRequestError(
        f"KeywordRetriever takes Documents or strings; item {index} is a {type(item).__name__}."
    )


class KeywordRetriever:
    """Okapi BM25 over documents (or plain strings, which get ids "0", "1", ...)."""

    def __init__(self, documents: Iterable[Document | str], *, k1: float = 1.5, b: float = 0.75):
        self.documents = [_as_document(item, i) for i, item in enumerate(documents)]
        if not self.documents:
            raise InvalidRequestError("KeywordRetriever needs at least one document to search.")
        self.k1, self.b = k1, b
        self._counts = [
            Counter(terms(f"{doc.title}\n{doc.text}", doc.language)) for doc in self.documents
        ]
        self._lengths = [sum(counts.values()) for counts in self._counts]
        self._average_length = max(sum(self._lengths) / len(self._lengths), 1.0)
        frequency = Counter(term for counts in self._counts for term in counts)
        n = len(self.documents)
        self._idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}

    def search(self, query: str, k: int = 4) -> list[ScoredDocument]:
        """The k best documents for the query, best first (fewer when there are fewer
        documents). Documents that match nothing score 0 and keep corpus order."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequestError(
                "The search query is empty: give a few words to search for, "
                "e.g. 'allemannsretten telt'."
            )
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidRequestError(f"k must be a whole number ≥ 1, not {k!r}.")
        query_terms = set(terms(query, detect_language(query)))
        scores = [self._score(query_terms, i) for i in range(len(self.documents))]
        ranked = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable: ties keep order
        return [ScoredDocument(self.documents[i], scores[i]) for i in ranked[:k]]

    def _score(self, query_terms: set[str], index: int) -> float:
        counts, length = self._counts[index], self._lengths[index]
        norm = self.k1 * (1 - self.b + self.b * length / self._average_length)
        return sum(
            self._idf[term] * counts[term] * (self.k1 + 1) / (counts[term] + norm)
            for term in query_terms
            if term in counts
        )
