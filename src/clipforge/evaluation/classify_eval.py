"""Zero-shot classification accuracy of a ``ZeroShotModel``: class texts embedded once, images batched,
unreadable images counted and skipped."""

from __future__ import annotations

import time

import numpy as np

from clipforge.errors import InputError
from clipforge.evaluation.datasets import EvalData
from clipforge.evaluation.metrics import classification_metrics
from clipforge.progress import track


def load_batches(images: list, batch_size: int, show: bool):
    """Yield (indices, PIL images) per batch; unreadable images are collected in ``failures``."""
    from clipforge.runtime.images import load_image

    failures, batch = [], ([], [])
    for i, item in enumerate(track(images, "images", total=len(images), show=show)):
        try:
            batch[1].append(load_image(item))
            batch[0].append(i)
        except InputError as exc:
            failures.append({"index": i, "image": str(item)[:200] if not isinstance(item, bytes) else f"row {i}",
                             "error": str(exc)})
        if len(batch[0]) == batch_size:
            yield batch, failures
            batch = ([], [])
    yield batch, failures


def embed_dataset(model, images: list, batch_size: int, show: bool) -> tuple[np.ndarray, list[int], list[dict]]:
    chunks, kept, failures = [], [], []
    for (idx, pil), failures in load_batches(images, batch_size, show):
        if idx:
            chunks.append(model.embed_images(pil, batch_size))
            kept += idx
    dim = model.manifest.embed_dim
    return (np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)), kept, failures


def evaluate_classification(model, data: EvalData, templates: list[str], batch_size: int = 32,
                            show: bool = True) -> dict:
    start = time.perf_counter()
    text = model.label_embeddings(data.class_names, templates)
    images, kept, failures = embed_dataset(model, data.images, batch_size, show)
    scores = model.logits(images, text)
    result = classification_metrics(scores, np.asarray(data.labels)[kept], data.class_names)
    result.update({"samples": len(data.images), "evaluated": len(kept), "unreadable": len(failures),
                   "failures": failures, "seconds": time.perf_counter() - start, "templates": len(templates)})
    return result
