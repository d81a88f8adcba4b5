"""Text embeddings from a local runtime, for retrieval without a cloud service.

Named like the chat models (`registry.open_embedder`): a `.gguf` path runs in llama.cpp
with mean pooling, an Ollama tag (`bge-m3`, `ollama:bge-m3`) in Ollama, and
`openai:MODEL@BASE_URL` on any OpenAI-compatible server. Each backend module has its
embedder; this is what they share. Vectors come back L2-normalised, so a dot product is
the cosine similarity.
"""

from __future__ import annotations

import asyncio
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from borealis_local.errors import InvalidRequestError


def _normalised(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else list(vector)


def _checked(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise InvalidRequestError("embed takes a list of texts")
    return list(texts)


class Embedder(ABC):
    """Turns texts into vectors; one vector per text, L2-normalised."""

    kind: ClassVar[str]

    def __init__(self, model: str):
        self.model = model

    @abstractmethod
    def _embed(self, texts: list[str]) -> list[list[float]]: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        texts = _checked(texts)
        if not texts:
            return []
        return [_normalised(v) for v in self._embed(texts)]

    def embed_query(self, text: str) -> list[float]:
        """A search query's vector, L2-normalised."""
        return _normalised(self._embed_query(_checked([text])[0]))

    def _embed_query(self, text: str) -> list[float]:
        """The same as a document's here; an embedder whose model marks queries (a
        prefix, another call) overrides this."""
        return self._embed([text])[0]

    async def aembed(self, texts: Sequence[str]) -> list[list[float]]:
        """In a worker thread: the event loop never waits on the model."""
        return await asyncio.to_thread(self.embed, texts)

    def close(self) -> None:  # noqa: B027 - optional: most embedders hold nothing
        """Release the model or connection."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
