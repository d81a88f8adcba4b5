"""Embeddings from a local runtime, for LangChain vector stores.

`BorealisEmbeddings` translates types only: the runtime layer
(`borealis_local.runtime.embeddings`) opens the model, batches, normalises the vectors
and turns failures into errors that say what to do.
"""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field

from borealis_local.runtime import registry
from borealis_local.runtime.embeddings import Embedder


class BorealisEmbeddings(BaseModel, Embeddings):
    """Embeddings from a model on a local runtime.

    Setup:
        An embedding model on this machine: `ollama pull bge-m3` (then
        `model="bge-m3"`), a GGUF embedding model for llama.cpp (`model="./bge-m3.gguf"`),
        or an OpenAI-compatible server (`model="openai:bge-m3@http://127.0.0.1:8080/v1"`).

    Use:
        ```python
        from langchain_core.vectorstores import InMemoryVectorStore
        from langchain_borealis import BorealisEmbeddings, example_corpus_documents

        store = InMemoryVectorStore(BorealisEmbeddings(model="bge-m3"))
        store.add_documents(example_corpus_documents())
        retriever = store.as_retriever(search_kwargs={"k": 3})
        ```

    Vectors are L2-normalised. A model is opened once per process for the same name and
    arguments, and shared by every instance.
    """

    model_config = ConfigDict(extra="forbid")

    model: str
    """The embedding model: an Ollama tag (`bge-m3`, `ollama:NAME`), a `.gguf` path
    (llama.cpp, mean pooling) or `openai:MODEL@BASE_URL`."""

    embedder_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Arguments for the embedder's constructor, e.g. `{"n_ctx": 2048, "n_threads": 4}`
    for llama.cpp or `{"host": "http://gpu-box:11434"}` for Ollama."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text."""
        return self._embedder().embed(texts)

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query."""
        return self._embedder().embed([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text; the model runs off the event loop."""
        return await self._embedder().aembed(texts)

    async def aembed_query(self, text: str) -> list[float]:
        """The vector of one query; the model runs off the event loop."""
        return (await self._embedder().aembed([text]))[0]

    def _embedder(self) -> Embedder:
        return registry.shared_embedder(self.model, **self.embedder_kwargs)


def close_shared_embedders() -> None:
    """Close every embedding model opened for BorealisEmbeddings and BorealisEmbedding."""
    registry.SHARED.close("embedding")
