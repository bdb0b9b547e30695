"""Metrics from score matrices: classification (top-1, top-5, mean per-class recall, per-class accuracy) and
retrieval (recall@k). Ranks use a stable sort on descending scores, so ties break towards the lower index."""

from __future__ import annotations

import numpy as np


def ranked(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` highest scores per row, best first."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def classification_metrics(scores: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """``scores`` [samples, classes], ``labels`` [samples] -> percentages. ``top5`` uses min(5, classes)."""
    labels = np.asarray(labels, dtype=np.int64)
    k = min(5, len(class_names))
    if len(labels) == 0:
        return {
            "top1": float("nan"),
            "top5": float("nan"),
            "top5_k": k,
            "mean_per_class_recall": float("nan"),
            "per_class": {},
            "predictions": [],
        }
    top = ranked(scores, k)
    hit1, hitk = top[:, 0] == labels, (top == labels[:, None]).any(axis=1)
    per_class = {
        name: 100.0 * float(hit1[labels == i].mean()) for i, name in enumerate(class_names) if (labels == i).any()
    }
    return {
        "top1": 100.0 * float(hit1.mean()),
        "top5": 100.0 * float(hitk.mean()),
        "top5_k": k,
        "mean_per_class_recall": float(np.mean(list(per_class.values()))),
        "per_class": per_class,
        "predictions": top[:, 0].tolist(),
    }


def agreement(a: list[int], b: list[int]) -> float:
    """Percentage of equal top-1 predictions (the two lists cover the same evaluated rows)."""
    if not a or len(a) != len(b):
        return float("nan")
    return 100.0 * float(np.mean(np.asarray(a) == np.asarray(b)))


def recall_at_k(similarity: np.ndarray, truth: list[set[int]], ks=(1, 5, 10)) -> dict:
    """Per query row, is any of its true columns among the ``k`` best; percentages for each k."""
    if similarity.shape[0] == 0:
        return {f"R@{k}": float("nan") for k in ks}
    top = ranked(similarity, max(ks))
    hits = {k: [bool(truth[i].intersection(top[i, :k].tolist())) for i in range(len(truth))] for k in ks}
    return {f"R@{k}": 100.0 * float(np.mean(h)) for k, h in hits.items()}
