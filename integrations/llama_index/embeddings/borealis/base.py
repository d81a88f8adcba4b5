"""Local embeddings for LlamaIndex (`VectorStoreIndex`) over borealis-local's runtime.

`model_name` is named as the runtime layer names embedders
(`borealis_local.runtime.registry.open_embedder`): a `.gguf` path (llama.cpp, mean
pooling), an Ollama tag such as `bge-m3`, or `openai:MODEL@BASE_URL`. Vectors come back
L2-normalised. Opened embedders are shared across instances, as the LLM's runtimes are.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field

from borealis_local.runtime import registry
from borealis_local.runtime.embeddings import Embedder


class BorealisEmbedding(BaseEmbedding):
    """Embeddings from a model on this machine or a local server: no cloud service.

    ```python
    from llama_index.embeddings.borealis import BorealisEmbedding

    embed_model = BorealisEmbedding(model_name="bge-m3")  # Ollama: `ollama pull bge-m3`
    ```
    """

    model_name: str = Field(
        description="A .gguf path, an Ollama tag (bge-m3, ollama:…) or openai:MODEL@BASE_URL."
    )
    query_instruction: str | None = Field(
        default=None,
        description="Put before every query, for models trained with one (e5: 'query: ').",
    )
    text_instruction: str | None = Field(
        default=None, description="Put before every document text (e5: 'passage: ')."
    )
    backend_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Arguments for the embedder: n_ctx, n_threads (llama.cpp), host "
        "(Ollama), api_key, timeout (OpenAI-compatible), …",
    )

    @classmethod
    def class_name(cls) -> str:
        return "BorealisEmbedding"

    def _embedder(self) -> Embedder:
        return registry.shared_embedder(self.model_name, **self.backend_kwargs)

    def _queries(self, query: str) -> list[str]:
        return [(self.query_instruction or "") + query]

    def _texts(self, texts: list[str]) -> list[str]:
        return [(self.text_instruction or "") + text for text in texts]

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embedder().embed(self._queries(query))[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._embedder().aembed(self._queries(query)))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embedder().embed(self._texts([text]))[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._embedder().aembed(self._texts([text])))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embedder().embed(self._texts(texts))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._embedder().aembed(self._texts(texts))
