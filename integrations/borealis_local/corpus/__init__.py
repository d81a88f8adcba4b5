"""An example corpus: twelve short documents on Norwegian topics, written for this
project in Bokmål and Nynorsk, for retrieval and RAG examples and tests."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Document:
    """One document: a stable id, a title, its language (nb, nn or en) and its text."""

    id: str
    title: str
    language: str
    text: str


def load_corpus() -> list[Document]:
    """The example corpus, in a fixed order."""
    data = tomllib.loads(resources.files(__name__).joinpath("documents.toml").read_text("utf-8"))
    return [Document(**entry) for entry in data["document"]]
