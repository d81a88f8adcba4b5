"""Hybrid search: keyword and embedding rankings fused by reciprocal-rank fusion.

RRF (Cormack, Clarke and Büttcher, SIGIR 2009) scores a document by the sum, over the
rankings, of weight / (rrf_k + rank), rank counted from 1; a ranking that does not hold
the document adds nothing. It needs no score calibration between BM25 and cosine, which
is why it is the common choice. rrf_k = 60 is the paper's value: a larger rrf_k flattens
the difference between the first ranks, a smaller one lets each ranking's top dominate.
Weights (default 1 and 1) tilt the fusion toward one retriever.
"""

from __future__ import annotations

from collections.abc import Sequence

from borealis_local.errors import InvalidRequestError
from borealis_local.retrieval.base import Retriever, ScoredDocument, checked_k, checked_query

RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[ScoredDocument]],
    *,
    weights: Sequence[float] | None = None,
    rrf_k: float = RRF_K,
) -> list[ScoredDocument]:
    """All documents of the rankings, by fused score (best first; ties keep the order in
    which documents were first met). Documents are told apart by id."""
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    _check(len(rankings), weights, rrf_k)
    fused: dict[str, float] = {}
    documents = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(ranking, start=1):
            documents.setdefault(hit.document.id, hit.document)
            fused[hit.document.id] = fused.get(hit.document.id, 0.0) + weight / (rrf_k + rank)
    ordered = sorted(fused, key=lambda doc_id: -fused[doc_id])  # stable: first met first
    return [ScoredDocument(documents[doc_id], fused[doc_id]) for doc_id in ordered]


def _check(rankings: int, weights: Sequence[float], rrf_k: float) -> None:
    if len(weights) != rankings:
        raise InvalidRequestError(f"{rankings} rankings but {len(weights)} weights")
    if any(w < 0 for w in weights) or rrf_k <= 0:
        raise InvalidRequestError("RRF weights must be ≥ 0 and rrf_k > 0")


class HybridRetriever:
    """Keyword and embedding search over the same documents, fused by RRF.

    Each retriever is asked for `candidates` documents (default: 4 × k, at least 20);
    the fused list's first k come back, scored by their fused RRF score.
    """

    def __init__(
        self,
        keyword: Retriever,
        embedding: Retriever,
        *,
        weights: tuple[float, float] = (1.0, 1.0),
        rrf_k: float = RRF_K,
        candidates: int | None = None,
    ):
        self.retrievers = (keyword, embedding)
        self.weights, self.rrf_k, self.candidates = tuple(weights), rrf_k, candidates
        _check(2, self.weights, rrf_k)

    def search(self, query: str, k: int = 4) -> list[ScoredDocument]:
        query, k = checked_query(query), checked_k(k)
        depth = self.candidates or max(4 * k, 20)
        keyword, embedding = self.retrievers
        # Keyword hits that match nothing (score 0) are filler in corpus order, no vote.
        matched = [hit for hit in keyword.search(query, k=depth) if hit.score > 0]
        rankings = [matched, embedding.search(query, k=depth)]
        return reciprocal_rank_fusion(rankings, weights=self.weights, rrf_k=self.rrf_k)[:k]
