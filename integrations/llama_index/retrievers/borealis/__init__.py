"""Norwegian retrieval for LlamaIndex: BM25 with borealis-local's Bokmål/Nynorsk analyzer,
and hybrid search (BM25 and embeddings fused by reciprocal rank)."""

from llama_index.retrievers.borealis.base import BorealisHybridRetriever, BorealisKeywordRetriever

__all__ = ["BorealisHybridRetriever", "BorealisKeywordRetriever"]
