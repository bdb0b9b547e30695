"""Zero-shot classification accuracy of a ``ZeroShotModel``: class texts embedded once (prompt ensembles
averaged), images decoded and pre-processed in a helper thread while the image encoder runs on the previous
batch, unreadable images counted and skipped."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from clipforge.data.labelled import EvalData
from clipforge.errors import InputError
from clipforge.evaluation.scores import classification_metrics
from clipforge.progress import track
from clipforge.runtime.images import load_image, preprocess
from clipforge.runtime.scoring import l2_normalize


@dataclass
class Prepared:
    """One batch after decoding: which dataset rows made it, their pixels, and the failures."""

    indices: list[int]
    pixels: object
    failures: list[dict] = field(default_factory=list)


def describe(item, index: int) -> str:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return f"row {index} ({len(item)} bytes)"
    return str(item)[:200] if item is not None else f"row {index} (no image)"


def prepare_batch(items: list, offset: int, convert) -> Prepared:
    """Decode ``items`` (dataset rows ``offset``...) and apply ``convert`` (a list of PIL images -> model input).
    An image that cannot be read, or converted on its own, is recorded instead of failing the batch."""

    out = Prepared([], [])
    for j, item in enumerate(items):
        try:
            out.pixels.append(load_image(item))
            out.indices.append(offset + j)
        except InputError as exc:
            out.failures.append({"index": offset + j, "image": describe(item, offset + j), "error": str(exc)})
    try:
        out.pixels = convert(out.pixels) if out.indices else None
    except InputError:  # isolate the image(s) the pre-processing rejects
        good = [(i, p) for i, p in zip(out.indices, out.pixels) if _converts(convert, p, i, out.failures)]
        out.indices = [i for i, _ in good]
        out.pixels = convert([p for _, p in good]) if good else None
    return out


def _converts(convert, image, index: int, failures: list[dict]) -> bool:
    try:
        convert([image])
        return True
    except InputError as exc:
        failures.append({"index": index, "image": f"row {index}", "error": str(exc)})
        return False


def prepared_batches(images: list, batch_size: int, convert, show: bool = True, what: str = "images"):
    """Yield ``Prepared`` batches in order; batch k+1 is decoded in a helper thread while the caller works on k
    (Pillow and onnxruntime both release the GIL)."""
    if batch_size < 1:
        raise InputError(f"batch_size= must be at least 1, got {batch_size}")
    starts = list(range(0, len(images), batch_size))
    with ThreadPoolExecutor(max_workers=1) as pool:
        submit = lambda s: pool.submit(prepare_batch, images[s : s + batch_size], s, convert)  # noqa: E731
        pending = submit(starts[0]) if starts else None
        for k, _ in enumerate(track(starts, f"{what} (batches of {batch_size})", total=len(starts), show=show)):
            batch = pending.result()
            pending = submit(starts[k + 1]) if k + 1 < len(starts) else None
            yield batch


def embed_dataset(
    model, images: list, batch_size: int = 32, show: bool = True
) -> tuple[np.ndarray, list[int], list[dict]]:
    """Normalised image embeddings of the readable images, their dataset indices, and the failures."""

    spec = model.manifest.image
    chunks, kept, failures = [], [], []
    for batch in prepared_batches(images, batch_size, lambda pil: preprocess(pil, spec), show):
        failures += batch.failures
        if batch.indices:
            chunks.append(model.encode_pixels(batch.pixels))
            kept += batch.indices
    emb = np.concatenate(chunks) if chunks else np.zeros((0, model.manifest.embed_dim), np.float32)
    return l2_normalize(emb), kept, failures


def check_some_read(data_images: list, failures: list[dict], kept: list[int]) -> None:
    if data_images and not kept:
        raise InputError(
            f"none of the {len(data_images)} images could be read (first error: "
            f"{failures[0]['error'] if failures else 'none'}); check the input column and the files"
        )


def finish(scores: np.ndarray, data: EvalData, kept: list[int], failures: list[dict], start: float) -> dict:
    """Metrics over the evaluated rows plus the bookkeeping every report carries."""
    result = classification_metrics(scores, np.asarray(data.labels, dtype=np.int64)[kept], data.class_names)
    seconds = time.perf_counter() - start
    result.update(
        {
            "samples": len(data.images),
            "evaluated": len(kept),
            "unreadable": len(failures),
            "failures": failures,
            "seconds": seconds,
            "images_per_s": len(kept) / max(seconds, 1e-9),
        }
    )
    return result


def evaluate_classification(
    model, data: EvalData, templates: list[str], batch_size: int = 32, show: bool = True
) -> dict:
    """Top-1/top-5, mean per-class recall and per-class accuracy of ``model`` on ``data`` with ``templates``."""
    start = time.perf_counter()
    text = model.label_embeddings(data.class_names, templates)
    images, kept, failures = embed_dataset(model, data.images, batch_size, show)
    check_some_read(data.images, failures, kept)
    return finish(model.logits(images, text), data, kept, failures, start)
