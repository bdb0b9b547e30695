"""Classification metrics from a score matrix [samples, classes]."""

from __future__ import annotations

import numpy as np


def classification_metrics(scores: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    labels = np.asarray(labels)
    if len(labels) == 0:
        return {"top1": float("nan"), "top5": float("nan"), "mean_per_class_recall": float("nan"), "per_class": {}}
    k = min(5, scores.shape[1])
    topk = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top1 = topk[:, 0] == labels
    top5 = (topk == labels[:, None]).any(axis=1)
    per_class = {}
    for i, name in enumerate(class_names):
        mask = labels == i
        if mask.any():
            per_class[name] = 100.0 * float(top1[mask].mean())
    return {"top1": 100.0 * float(top1.mean()), "top5": 100.0 * float(top5.mean()),
            "mean_per_class_recall": float(np.mean(list(per_class.values()))), "per_class": per_class,
            "predictions": topk[:, 0].tolist()}


def recall_at_k(similarity: np.ndarray, truth: list[list[int]], ks=(1, 5, 10)) -> dict:
    """For each query row, is any of its true items among the top-k columns."""
    order = np.argsort(-similarity, axis=1, kind="stable")
    return {f"R@{k}": 100.0 * float(np.mean([bool(set(order[i, :k]) & set(t)) for i, t in enumerate(truth)]))
            for k in ks}
