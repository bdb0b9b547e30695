"""Near-duplicate groups from stored embeddings: pairs with cosine >= threshold, joined transitively."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clipforge.errors import InputError
from clipforge.index.base import Hit

BLOCK = 2048  # rows of the similarity matrix computed at a time (BLOCK x N floats)


def duplicate_groups(ids: np.ndarray, paths: Sequence[str], matrix: np.ndarray, threshold: float) -> list[list[Hit]]:
    """Each group lists its images (score: best similarity to another member), groups largest first."""
    if not -1.0 <= threshold <= 1.0:
        raise InputError(f"threshold must be a cosine between -1 and 1, got {threshold}")
    parent = np.arange(len(ids))
    best = np.full(len(ids), -np.inf, np.float32)
    for start in range(0, len(ids), BLOCK):
        sims = matrix[start : start + BLOCK] @ matrix.T
        rows = np.arange(sims.shape[0])
        sims[rows, rows + start] = -np.inf  # an image is not its own duplicate
        best[start : start + len(rows)] = sims.max(axis=1) if sims.shape[1] else -np.inf
        for i, j in zip(*np.nonzero(sims >= threshold)):
            _union(parent, start + int(i), int(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(ids)):
        groups.setdefault(_find(parent, i), []).append(i)
    found = [g for g in groups.values() if len(g) > 1]
    found.sort(key=lambda g: (-len(g), g[0]))
    return [[Hit(int(ids[i]), paths[i], float(best[i])) for i in g] for g in found]


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = int(parent[i])
    return i


def _union(parent: np.ndarray, a: int, b: int) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)
