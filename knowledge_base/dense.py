"""Dense vectors: a float32 .npy matrix, one L2-normalised row per chunk (row i is chunk i + 1), searched exactly.

Brute-force matmul over 10^5 x 384 floats takes a few milliseconds on the box (`orbox kb bench`
prints the figure), well inside the latency budget, and exact search has no recall loss and no
build-time randomness; an approximate index would buy nothing at this size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knowledge_base.errors import KnowledgeBaseError


def save_matrix(path: Path, vectors: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)


def load_matrix(path: Path, rows: int, dim: int) -> np.ndarray:
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise KnowledgeBaseError(f"{path}: not a readable .npy matrix ({exc})") from exc
    if matrix.dtype != np.float32 or matrix.shape != (rows, dim):
        raise KnowledgeBaseError(f"{path}: expected float32 of shape ({rows}, {dim}), found {matrix.dtype} "
                                 f"{matrix.shape}")
    return matrix


def exact_top(matrix: np.ndarray, query: np.ndarray, count: int) -> list[tuple[int, float]]:
    """(row, cosine) of the `count` best rows, best first, equal scores by lower row."""
    scores = matrix @ query.astype(np.float32)
    count = min(count, len(scores))
    if count == 0:
        return []
    threshold = np.partition(scores, len(scores) - count)[len(scores) - count]
    rows = np.flatnonzero(scores >= threshold)  # every row tied at the threshold, so ties resolve by row
    order = np.lexsort((rows, -scores[rows]))[:count]
    return [(int(rows[i]), float(scores[rows[i]])) for i in order]
