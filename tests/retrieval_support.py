"""Test doubles for retrieval: embedders whose vectors the test chooses.

They stand in for a real embedding model where a test needs to know exactly which
document is nearest (fusion, ranking); tests/test_embeddings.py and the slow tests here
use a real model through llama.cpp.
"""

from __future__ import annotations

from borealis_local.runtime.embeddings import Embedder


class ChosenVectorsEmbedder(Embedder):
    """A double: each known text has the vector the test gave it; others raise."""

    kind = "test-double"

    def __init__(self, vectors: dict[str, list[float]], model: str = "chosen-vectors"):
        super().__init__(model)
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def _embed(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        missing = [t for t in texts if t not in self.vectors]
        if missing:
            raise KeyError(f"no vector chosen for {missing!r}")
        return [self.vectors[t] for t in texts]
