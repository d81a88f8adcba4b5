"""Local embeddings for LlamaIndex from borealis-local's runtimes (llama.cpp, Ollama,
OpenAI-compatible servers)."""

from llama_index.embeddings.borealis.base import BorealisEmbedding

__all__ = ["BorealisEmbedding"]
