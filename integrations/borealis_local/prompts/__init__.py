"""Bokmål, Nynorsk and English prompts for RAG and editing tasks, shared by the
LangChain and LlamaIndex integrations.

Prompts are data: one TOML file per language next to this module (nb.toml, nn.toml,
en.toml), written natively in each language. This module loads and checks them, tells
the languages apart, and formats sources so that their text stays data.

    >>> messages, language = build_rag_messages("Hva er dugnad?", ["Dugnad er ..."])
"""

from __future__ import annotations

import re
import string
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources

from borealis_local.errors import BorealisError, InvalidRequestError, UnknownLanguageError

LANGUAGES = ("nb", "nn", "en")
NORWEGIAN = ("nb", "nn")

# The contract the integrations build on: every template and the variables it uses.
TEMPLATE_VARIABLES: dict[str, frozenset[str]] = {
    "rag_answer": frozenset({"sources", "question"}),
    "refine": frozenset({"question", "existing_answer", "source"}),
    "condense_question": frozenset({"chat_history", "question"}),
    "summarise": frozenset({"text"}),
    "title_ingress": frozenset({"text"}),
    "language_review": frozenset({"text"}),
}
# Texts used as they are, never formatted: they may hold no variables.
PLAIN_TEXTS = ("system", "no_answer", "source_heading")

# The markers around each source. The same in every language, so sources formatted
# once fit any language's template.
SOURCE_OPEN = "<kilde>"
SOURCE_CLOSE = "</kilde>"


UnknownLanguage = UnknownLanguageError  # the name the prompts API brief uses


@dataclass(frozen=True)
class Prompts:
    """The prompts of one language. Templates are str.format strings."""

    language: str
    system: str | None
    rag_answer: str
    refine: str
    condense_question: str
    summarise: str
    title_ingress: str
    language_review: str
    no_answer: str
    source_heading: str

    def variables(self, name: str) -> set[str]:
        """The variables the template `name` uses, e.g. {"sources", "question"}."""
        if name not in TEMPLATE_VARIABLES and name not in PLAIN_TEXTS:
            known = ", ".join([*TEMPLATE_VARIABLES, *PLAIN_TEXTS])
            raise InvalidRequestError(f"No prompt named {name!r}: use one of {known}.")
        text = getattr(self, name)
        return {field for field, _, _ in _fields(text)} if text else set()


# --- languages -------------------------------------------------------------------


def _code(language: object) -> str:
    return language.strip().lower() if isinstance(language, str) else repr(language)


def _unknown(language: object, *, auto: bool) -> UnknownLanguageError:
    accepted = ", ".join(LANGUAGES) + (" or auto" if auto else "")
    hint = "" if auto else " (for auto, call resolve_language(language, text) first)"
    return UnknownLanguageError(f"Unknown language {language!r}: use one of {accepted}{hint}.")


def resolve_language(language: str, text: str) -> str:
    """`language` if it is nb, nn or en; "auto" picks one from `text`."""
    code = _code(language)
    if code == "auto":
        return detect_language(text)
    if code not in LANGUAGES:
        raise _unknown(language, auto=True)
    return code


@dataclass(frozen=True)
class _Markers:
    """What marks a word as belonging to one language (from its data file)."""

    words: frozenset[str]
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    exceptions: frozenset[str]

    def match(self, word: str) -> bool:
        if word in self.words:
            return True
        # An affix says little about a short word ("har" is no -ar verb).
        return word not in self.exceptions and (
            any(word.startswith(p) and len(word) >= len(p) + 3 for p in self.prefixes)
            or any(word.endswith(s) and len(word) >= len(s) + 3 for s in self.suffixes)
        )


_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
_NORWEGIAN_LETTERS = re.compile("[æøå]")


def _normalised(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower().replace("\u2019", "'")


def function_words(language: str) -> frozenset[str]:
    """The language's function words (ikke, jeg, og, ...): the detector's evidence and
    the keyword retriever's stopwords."""
    return _markers()[_checked(language)].words


def detect_language(text: str, *, default: str = "nb") -> str:
    """nb, nn or en, from function words (ikke/ikkje, jeg/eg, hva/kva, hvordan/korleis,
    the, and, ...) and a few spellings only one language has (hv-, -leg, -tion).

    Short or ambiguous text, where the evidence ties, gives `default`. Text that is
    Norwegian but does not tell Bokmål from Nynorsk gives `default` if that is nb or
    nn, else nb.
    """
    default = _checked(default)
    if not isinstance(text, str):
        raise InvalidRequestError(f"detect_language needs text, not {type(text).__name__}.")
    evidence = _evidence(text)
    english = evidence["en"]
    norwegian = evidence["nb"] + evidence["nn"] + evidence["norwegian"]
    if english == norwegian:
        return default
    if english > norwegian:
        return "en"
    if evidence["nb"] != evidence["nn"]:
        return "nb" if evidence["nb"] > evidence["nn"] else "nn"
    return default if default in NORWEGIAN else "nb"


def _evidence(text: str) -> Counter[str]:
    """One vote per word for the only language it marks; "norwegian" for nb-and-nn."""
    markers = _markers()
    text = _normalised(text)
    evidence: Counter[str] = Counter()
    for word in _WORD.findall(text):
        languages = {code for code, marker in markers.items() if marker.match(word)}
        if len(languages) == 1:
            evidence[languages.pop()] += 1
        elif languages == set(NORWEGIAN):
            evidence["norwegian"] += 1
    if _NORWEGIAN_LETTERS.search(text):
        evidence["norwegian"] += 1
    return evidence


def _checked(language: str) -> str:
    code = _code(language)
    if code not in LANGUAGES:
        raise _unknown(language, auto=False)
    return code


# --- loading the data files ---------------------------------------------------------


@cache
def _data(language: str) -> dict:
    name = f"{language}.toml"
    try:
        return tomllib.loads(resources.files(__name__).joinpath(name).read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise BorealisError(
            f"prompts/{name} cannot be read ({error}): reinstall borealis-local."
        ) from error


@cache
def _markers() -> dict[str, _Markers]:
    def markers(detection: dict) -> _Markers:
        return _Markers(
            words=frozenset(detection["function_words"]),
            prefixes=tuple(detection["prefixes"]),
            suffixes=tuple(detection["suffixes"]),
            exceptions=frozenset(detection["exceptions"]),
        )

    return {code: markers(_data(code)["detection"]) for code in LANGUAGES}


@cache
def get_prompts(language: str = "nb") -> Prompts:
    """The prompts of nb, nn or en ("auto" is not accepted: use resolve_language)."""
    code = _checked(language)
    data = {key: value for key, value in _data(code).items() if key != "detection"}
    data.setdefault("system", None)
    _check(code, data)
    return Prompts(**data)


def _check(code: str, data: dict) -> None:
    """Fail loudly when a data file breaks the contract: a missing, extra or misspelt
    key or variable."""

    def fail(problem: str) -> None:
        raise BorealisError(f"prompts/{code}.toml: {problem}")

    expected = {f.name for f in fields(Prompts)}
    if set(data) != expected:
        fail(f"keys {sorted(set(data) ^ expected)} missing or unknown")
    if data["language"] != code:
        fail(f"says language = {data['language']!r}")
    for name, variables in TEMPLATE_VARIABLES.items():
        found = _fields(data[name])
        if any(conversion or spec for _, conversion, spec in found):
            fail(f"{name}: use plain {{name}} variables, without !conversion or :format")
        if {field for field, _, _ in found} != variables:
            fail(f"{name} must use exactly the variables {sorted(variables)}")
    for name in PLAIN_TEXTS:
        if data[name] is not None and _fields(data[name]):
            fail(f"{name} is used as it is: it may hold no {{variables}} (write {{{{ }}}})")


def _fields(template: str) -> list[tuple[str, str | None, str]]:
    """(name, conversion, format spec) of each {variable}; raises on a stray brace."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise BorealisError(f"prompt template has a stray brace ({error})") from error
    return [(field, conversion, spec) for _, field, spec, conversion in parsed if field is not None]


# --- sources, answers and messages ----------------------------------------------------

# Anything that could read as our marker inside a source: <kilde, </kilde, < / KILDE,
# also with fullwidth or small angle brackets or invisible characters in between.
_GAP = r"[\s\u00ad\u200b-\u200f\u2060\ufeff]*"
_MARKER_LOOKALIKE = re.compile(rf"[<\uff1c\ufe64]({_GAP}/?{_GAP}kilde)", re.IGNORECASE)
_CITATION = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")


def _escape_source(text: str) -> str:
    """Source text that cannot open or close a source block."""
    return _MARKER_LOOKALIKE.sub(r"&lt;\1", text.strip())


def _escape_title(title: object) -> str:
    """A title (any value, e.g. from metadata) that stays one attribute on one line."""
    flat = " ".join(str(title).split())
    for character, entity in (("&", "&amp;"), ('"', "&quot;"), ("<", "&lt;"), (">", "&gt;")):
        flat = flat.replace(character, entity)
    return flat


def format_sources(
    texts: Sequence[str], *, titles: Sequence[str | None] | None = None, start: int = 1
) -> str:
    """Numbered sources as data, one block each, separated by a blank line:

        [1] <kilde tittel="Dugnad">
        Dugnad er ...
        </kilde>

    Marker lookalikes inside a text are escaped (`</kilde>` becomes `&lt;/kilde>`), so
    no source can close its block or open another.
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise InvalidRequestError("format_sources needs a list of texts (strings).")
    if titles is not None and len(titles) != len(texts):
        raise InvalidRequestError(
            f"format_sources got {len(texts)} texts but {len(titles)} titles: give one title "
            "(or None) per text."
        )
    if isinstance(start, bool) or not isinstance(start, int) or start < 1:
        raise InvalidRequestError(
            f"format_sources: start must be a whole number ≥ 1, not {start!r}."
        )
    blocks = []
    for offset, text in enumerate(texts):
        title = titles[offset] if titles is not None else None
        attribute = f' tittel="{_escape_title(title)}"' if title not in (None, "") else ""
        opening = f"[{start + offset}] {SOURCE_OPEN[:-1]}{attribute}>"
        blocks.append(f"{opening}\n{_escape_source(text)}\n{SOURCE_CLOSE}")
    return "\n\n".join(blocks)


def parse_citations(answer: str, n_sources: int) -> list[int]:
    """Citation numbers ([1], [2], [1, 3]) in an answer, in first-seen order, without
    repeats, keeping only those within 1..n_sources."""
    cited: dict[int, None] = {}
    for group in _CITATION.findall(answer):
        for number in re.split(r"\s*[,;]\s*", group):
            if 1 <= int(number) <= n_sources:
                cited.setdefault(int(number))
    return list(cited)


def build_rag_messages(
    question: str,
    sources: Sequence[str],
    *,
    language: str = "auto",
    system: str | None = None,
) -> tuple[list[dict], str]:
    """The chat messages for a RAG answer (role/content dicts for the runtime layer)
    and the language used. `language="auto"` picks it from the question. No system
    message unless `system` is given (Borealis has its own baked in)."""
    if not isinstance(question, str) or not question.strip():
        raise InvalidRequestError(
            "The question is empty: ask something to answer from the sources."
        )
    code = resolve_language(language, question)
    prompts = get_prompts(code)
    content = prompts.rag_answer.format(sources=format_sources(sources), question=question.strip())
    system = system if system is not None else prompts.system
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": content})
    return messages, code


__all__ = [
    "LANGUAGES",
    "NORWEGIAN",
    "PLAIN_TEXTS",
    "SOURCE_CLOSE",
    "SOURCE_OPEN",
    "TEMPLATE_VARIABLES",
    "Prompts",
    "UnknownLanguage",
    "UnknownLanguageError",
    "build_rag_messages",
    "detect_language",
    "format_sources",
    "function_words",
    "get_prompts",
    "parse_citations",
    "resolve_language",
]
