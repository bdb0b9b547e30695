"""Zero-shot scoring from normalised embeddings (and prompt-ensemble class embeddings), shared by the runtime and
the pipeline wrapper: scaled cosine logits (+ SigLIP's bias), probabilities (softmax for CLIP, independent
sigmoids for SigLIP), top-k results."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def class_embeddings(
    embed_texts: Callable[[list[str]], np.ndarray], labels: list[str], templates: list[str]
) -> np.ndarray:
    """[labels, D]: every template filled with every label, embedded, averaged per label, normalised."""
    prompts = [t.format(label) for label in labels for t in templates]
    emb = embed_texts(prompts).reshape(len(labels), len(templates), -1)
    return l2_normalize(emb.mean(axis=1))


def logits(image_embeds: np.ndarray, text_embeds: np.ndarray, scale: float, bias: float | None) -> np.ndarray:
    """[images, texts]: ``scale`` * cosine, plus ``bias`` when the family has one."""
    out = scale * image_embeds @ text_embeds.T
    return out + bias if bias is not None else out


def probabilities(logits_: np.ndarray, sigmoid: bool) -> np.ndarray:
    """Independent sigmoids (SigLIP, which has a bias) or a softmax over the labels (CLIP)."""
    if sigmoid:
        return 1.0 / (1.0 + np.exp(-logits_))
    z = np.exp(logits_ - logits_.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def top_k(row: np.ndarray, labels: list[str], k: int) -> list[dict]:
    """The ``k`` best labels of one row as ``[{"label", "score"}]``, best first (HF pipeline's format)."""
    order = np.argsort(-row, kind="stable")[: max(1, k)]
    return [{"label": labels[i], "score": float(row[i])} for i in order]
