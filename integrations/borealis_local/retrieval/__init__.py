"""Retrieval for RAG over Norwegian (Bokmål, Nynorsk) and English documents.

- analyzer: how text becomes search terms (normalisation, stopwords, light stemming);
- keyword: BM25 on bm25s with that analyzer, saved to and loaded from disk;
- embedding: cosine search over vectors from any runtime embedder;
- fusion: reciprocal-rank fusion of both (hybrid search);
- metrics and evaluation: recall@k, MRR and nDCG on a question set
  (`borealis eval retrieval`);
- postgres, qdrant: the same halves on engines that scale past one machine.

The names most code needs are here; the modules import their engines when used.
"""

from borealis_local.retrieval.analyzer import stem, terms
from borealis_local.retrieval.base import Retriever, ScoredDocument
from borealis_local.retrieval.keyword import KeywordRetriever

__all__ = ["KeywordRetriever", "Retriever", "ScoredDocument", "stem", "terms"]
