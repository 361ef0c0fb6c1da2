"""Reciprocal rank fusion (Cormack et al., 2009): score = sum over legs of 1 / (k + rank).

RRF needs no score calibration between bm25 and cosine, which live on unrelated scales; k = 60 is
the constant of the original paper and damps the weight of the very first ranks.
"""

from __future__ import annotations

RRF_K = 60


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """(id, fused score) best first; equal scores by lower id, so the order never depends on the legs' order."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))
