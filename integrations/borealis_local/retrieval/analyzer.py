"""The Norwegian analyzer: how documents and queries become search terms.

The same for documents and queries: Unicode NFC,
lower case, accents folded except on æ, ø and å (idé = ide, å stays å), each
language's function words dropped as stopwords, and a light stemmer that strips the
commonest Bokmål and Nynorsk endings (fjorden, fjordar, fjordane -> fjord).

    >>> terms("Fjordane er djupe", "nn")
    ['fjord', 'djup']

Its quality is the point of the keyword index (keyword.py puts it on bm25s); change it
and bump ANALYZER_VERSION, so that indexes saved with the old one are rebuilt.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache, lru_cache

from borealis_local.prompts import LANGUAGES, function_words

# Saved indexes record it; an index saved with another version must be rebuilt.
ANALYZER_VERSION = 1

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


@cache
def _stopwords(language: str | None) -> frozenset[str]:
    if language in LANGUAGES:
        return function_words(language)
    return frozenset().union(*(function_words(code) for code in LANGUAGES))


# Per stopword language: word -> its term, or "" for a stopword. A library has far
# fewer distinct words than words, so most words are one dict lookup. Bounded, so a
# stream of new words (ids, numbers) cannot grow it without end.
_TERM_OF: dict[str | None, dict[str, str]] = {}
_MAX_CACHED_WORDS = 1_000_000


def words(text: str) -> list[str]:
    """The text's words, NFC and lower case, before stopwords and stemming."""
    return _TERM.findall(unicodedata.normalize("NFC", text).lower())


def term(word: str, language: str | None = None) -> str:
    """The search term of one of `words`' words; "" for a stopword of `language` (of
    every language when None)."""
    return _term(word, language if language in LANGUAGES else None)


def _term(word: str, key: str | None) -> str:
    known = _TERM_OF.setdefault(key, {})
    found = known.get(word)
    if found is None:
        if len(known) > _MAX_CACHED_WORDS:
            known.clear()
        found = known[word] = "" if word in _stopwords(key) else stem(_fold(word))
    return found


def terms(text: str, language: str | None = None) -> list[str]:
    """The search terms of a text: normalised, stopwords of `language` dropped (of every
    language when None), stemmed."""
    key = language if language in LANGUAGES else None
    return [t for t in (_term(word, key) for word in words(text)) if t]
