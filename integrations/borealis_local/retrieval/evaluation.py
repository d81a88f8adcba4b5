"""Evaluate retrievers on a question set: documents and questions in, metrics out.

Questions are JSON Lines: {"question": ..., "relevant": [document ids], "language"?}.
The project ships a Norwegian set written for it (`shipped_set()`): Bokmål and Nynorsk
documents, and questions that paraphrase, inflect, split compounds and cross between
the written standards rather than repeat the document's words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from borealis_local.corpus import Document
from borealis_local.errors import InvalidRequestError
from borealis_local.prompts import LANGUAGES, detect_language
from borealis_local.retrieval.base import Retriever
from borealis_local.retrieval.document_files import json_lines, read_documents
from borealis_local.retrieval.metrics import CUTOFF, Scores, mean_scores


@dataclass(frozen=True)
class Question:
    question: str
    relevant: tuple[str, ...]
    language: str
    kind: str = ""  # what the question tests (paraphrase, crossing, ...), if given


def shipped_set() -> tuple[Path, Path]:
    """(documents, questions) of the project's Norwegian evaluation set."""
    data = resources.files("borealis_local.retrieval").joinpath("data")
    return Path(str(data.joinpath("documents.jsonl"))), Path(str(data.joinpath("questions.jsonl")))


def load_set(
    documents: Path | None = None, questions: Path | None = None
) -> tuple[list[Document], list[Question]]:
    """A question set's documents and questions (the shipped set where not given); every
    relevant id must name one of the documents."""
    if (documents is None) != (questions is None):
        raise InvalidRequestError(
            "Give both --documents and --questions (questions name their documents' ids), "
            "or neither for the shipped Norwegian set"
        )
    shipped = shipped_set()
    docs = read_documents(documents or shipped[0])
    return docs, read_questions(questions or shipped[1], {doc.id for doc in docs})


def read_questions(path: Path, document_ids: set[str]) -> list[Question]:
    found = [_question(value, f"{path}:{n}", document_ids) for n, value in json_lines(path)]
    if not found:
        raise InvalidRequestError(f"{path} holds no questions (one JSON object per line)")
    return found


def _question(value: dict, where: str, document_ids: set[str]) -> Question:
    text, relevant = value.get("question"), value.get("relevant")
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequestError(f'{where}: a question needs "question" as a non-empty string')
    if (
        not isinstance(relevant, list)
        or not relevant
        or not all(isinstance(doc_id, str) for doc_id in relevant)
    ):
        raise InvalidRequestError(f'{where}: "relevant" must be a list of document ids')
    unknown = [doc_id for doc_id in relevant if doc_id not in document_ids]
    if unknown:
        raise InvalidRequestError(
            f"{where}: relevant id(s) {', '.join(map(repr, unknown))} are not among the "
            "documents; check the ids against the documents file"
        )
    language = value.get("language") or detect_language(text)
    if language not in LANGUAGES:
        raise InvalidRequestError(f'{where}: "language" must be one of {", ".join(LANGUAGES)}')
    return Question(text, tuple(dict.fromkeys(relevant)), language, str(value.get("kind", "")))


def rankings(
    retriever: Retriever,
    questions: Sequence[Question],
    *,
    progress: Callable[[int], None] | None = None,
) -> list[list[str]]:
    """The ids of the retriever's top 10 for each question, in question order. A hit
    that scores 0 matched nothing (BM25 fills its k with them): it was not retrieved."""
    ranked = []
    for done, question in enumerate(questions, start=1):
        hits = retriever.search(question.question, k=CUTOFF)
        ranked.append([hit.document.id for hit in hits if hit.score > 0])
        if progress is not None:
            progress(done)
    return ranked


def scores(ranked: Sequence[Sequence[str]], questions: Sequence[Question]) -> Scores:
    """Mean scores of rankings (one per question, as `rankings` gives them)."""
    return mean_scores(zip(ranked, (q.relevant for q in questions), strict=True))


def evaluate(
    retriever: Retriever,
    questions: Sequence[Question],
    *,
    progress: Callable[[int], None] | None = None,
) -> Scores:
    """The retriever's mean scores over the questions (the top 10 of each)."""
    return scores(rankings(retriever, questions, progress=progress), questions)
