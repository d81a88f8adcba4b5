"""Ranking metrics for retrieval, with binary relevance (a document is relevant or not).

For one question with relevant set R and ranking d1, d2, ...:
- recall@k = |R ∩ {d1..dk}| / |R|  (with one relevant document: was it in the top k);
- MRR@k: 1 / the rank of the first relevant document in the top k, else 0;
- nDCG@k = DCG@k / ideal DCG@k, DCG@k = Σ_{i ≤ k, di ∈ R} 1 / log2(i + 1), the ideal
  putting all of R (at most k of it) first.
A set's score is the mean over its questions.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass

RECALL_AT = (1, 5, 10)
CUTOFF = 10  # of MRR and nDCG


def recall_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: Collection[str], k: int = CUTOFF) -> float:
    return next((1 / rank for rank, doc in enumerate(ranked[:k], 1) if doc in relevant), 0.0)


def ndcg_at(ranked: Sequence[str], relevant: Collection[str], k: int = CUTOFF) -> float:
    dcg = sum(1 / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], 1) if doc in relevant)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


@dataclass(frozen=True)
class Scores:
    """Mean metrics over `questions` questions."""

    questions: int
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    mrr_at_10: float
    ndcg_at_10: float

    def as_dict(self) -> dict:
        return asdict(self)


def mean_scores(results: Iterable[tuple[Sequence[str], Collection[str]]]) -> Scores:
    """Scores of (ranking, relevant ids) pairs, one pair per question."""
    results = list(results)
    if not results:
        raise ValueError("no questions to score")

    def mean(values) -> float:
        return sum(values) / len(results)

    return Scores(
        questions=len(results),
        recall_at_1=mean(recall_at(r, rel, 1) for r, rel in results),
        recall_at_5=mean(recall_at(r, rel, 5) for r, rel in results),
        recall_at_10=mean(recall_at(r, rel, 10) for r, rel in results),
        mrr_at_10=mean(reciprocal_rank(r, rel) for r, rel in results),
        ndcg_at_10=mean(ndcg_at(r, rel) for r, rel in results),
    )
