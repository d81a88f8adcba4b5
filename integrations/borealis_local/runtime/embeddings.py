"""Text embeddings from a local runtime, for retrieval without a cloud service.

Named like the chat models (runtime.resolve): a `.gguf` path runs in llama.cpp with
mean pooling, an Ollama tag (`bge-m3`, `ollama:bge-m3`) in Ollama, and
`openai:MODEL@BASE_URL` on any OpenAI-compatible server. Vectors come back
L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import asyncio
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from borealis_local.errors import InvalidRequestError
from borealis_local.runtime.resolve import describe


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

    async def aembed(self, texts: Sequence[str]) -> list[list[float]]:
        """In a worker thread: the event loop never waits on the model."""
        return await asyncio.to_thread(self.embed, texts)

    def close(self) -> None:  # noqa: B027 - optional: most embedders hold nothing
        """Release the model or connection."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LlamaCppEmbedder(Embedder):
    """A GGUF in llama.cpp, mean-pooled. One context: calls are serialised."""

    kind = "llama.cpp"

    def __init__(self, model_path: str | Path, *, n_ctx: int = 2048, n_threads: int | None = None,
                 name: str | None = None):
        from borealis_local.runtime.gguf_check import check_gguf

        path = Path(model_path).expanduser()
        check_gguf(path, architectures=_EMBEDDING_ARCHITECTURES)
        super().__init__(name or path.name)
        import llama_cpp

        self._llm = llama_cpp.Llama(
            model_path=str(path),
            embedding=True,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ctx,  # a text must fit one micro-batch to be pooled whole
            n_threads=n_threads,
            verbose=False,
        )
        self.n_ctx = n_ctx
        self._lock = threading.Lock()

    def _embed(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            for text in texts:
                n = len(self._llm.tokenize(text.encode("utf-8"), add_bos=True))
                if n > self.n_ctx:
                    raise InvalidRequestError(
                        f"a text of {n} tokens does not fit the embedding context of "
                        f"{self.n_ctx}: split it into smaller chunks or raise n_ctx"
                    )
            return self._llm.embed(texts, normalize=False, truncate=False)

    def close(self) -> None:
        with self._lock:
            self._llm.close()


class OllamaEmbedder(Embedder):
    """Ollama's /api/embed, with the chat backend's connection and error handling."""

    kind = "ollama"

    def __init__(self, model: str, **backend_kwargs: Any):
        from borealis_local.runtime.ollama import OllamaBackend

        super().__init__(model)
        self._backend = OllamaBackend(model, **backend_kwargs)

    def _embed(self, texts: list[str]) -> list[list[float]]:
        with self._backend._errors():
            response = self._backend._client.embed(model=self.model, input=texts)
        return [list(vector) for vector in response.embeddings]

    def close(self) -> None:
        self._backend.close()


class OpenAIEmbedder(Embedder):
    """/v1/embeddings, with the chat backend's connection and error handling."""

    kind = "openai"

    def __init__(self, model: str, base_url: str, **backend_kwargs: Any):
        from borealis_local.runtime.openai_compat import OpenAIBackend

        super().__init__(model)
        self._backend = OpenAIBackend(model, base_url, **backend_kwargs)

    def _embed(self, texts: list[str]) -> list[list[float]]:
        with self._backend._translated(started=False):
            response = self._backend._client.embeddings.create(model=self.model, input=texts)
        return [list(item.embedding) for item in sorted(response.data, key=lambda d: d.index)]

    def close(self) -> None:
        self._backend.close()


# Embedding GGUFs come in many architectures (bert, nomic-bert, xlm-roberta for
# bge-m3, gemma3 for embeddinggemma); the header check still catches broken files.
_EMBEDDING_ARCHITECTURES = (
    "gemma3", "gemma-embedding", "bert", "nomic-bert", "xlm-roberta", "jina-bert-v2",
    "qwen3", "llama",
)  # fmt: skip


def open_embedder(name: str, **kwargs: Any) -> Embedder:
    """The embedder for a model name (see the module doc); kwargs go to its constructor."""
    kind, arguments = describe(name)
    arguments.update(kwargs)
    if kind == "openai":
        return OpenAIEmbedder(**arguments)
    if kind == "ollama":
        return OllamaEmbedder(**arguments)
    return LlamaCppEmbedder(**arguments)
