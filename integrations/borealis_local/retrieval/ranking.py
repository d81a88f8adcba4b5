"""The k best of a score array, best first, ties in document order.

The keyword and the embedding index both score every document at once (a numpy
array); this picks the top k without sorting the whole array.
"""

from __future__ import annotations


def top_k(scores, k: int) -> list[int]:
    """Indexes of the k highest scores, highest first; equal scores keep document order
    (so with BM25, documents that match nothing come last, in corpus order)."""
    import numpy

    k = min(k, len(scores))
    cut = numpy.partition(scores, len(scores) - k)[len(scores) - k]  # the k-th best
    above = numpy.flatnonzero(scores > cut)
    above = above[numpy.argsort(-scores[above], kind="stable")]
    at_cut = numpy.flatnonzero(scores == cut)[: k - len(above)]
    return above.tolist() + at_cut.tolist()
