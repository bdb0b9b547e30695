"""Check pipeline graphs against the Python runtime and the HF tokenizer; collect every failure, raise once.

- text: token ids of the in-graph tokenizer identical to the HF tokenizer's (open_clip: the runtime's, which equal
  open_clip's) with the same padding and truncation, on a corpus of awkward prompts; embeddings vs
  ``ZeroShotModel.embed_texts`` (cosine >= 0.9999); an empty tensor fails.
- image: in-graph pre-processing of PNG bytes vs ``runtime.images.preprocess`` (at most ``MAX_LEVELS`` uint8
  levels apart); embeddings vs ``ZeroShotModel.embed_images`` on the same bytes (cosine >= 0.999); the HWC-pixels
  graph equal to the bytes graph; bytes that are no image fail with the decode node's message. JPEG figures are
  reported, not checked (the decoders differ, see docs/pipeline.md).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from clipforge.errors import ValidationError
from clipforge.export.cases import tokenize
from clipforge.export.validate import cosine_rows
from clipforge.pipeline._graph import extensions_session
from clipforge.pipeline.image_graph import DECODE_NODE, image_model
from clipforge.pipeline.text_graph import EMPTY_NODE, text_model
from clipforge.runtime.images import preprocess
from clipforge.runtime.model import ZeroShotModel
from clipforge.runtime.text import TextTokenizer
from clipforge.specs import Manifest, TextSpec

TEXT_COSINE, IMAGE_COSINE, MAX_LEVELS = 0.9999, 0.999, 3
VALIDATION_TEXTS = [
    "a photo of a cat.",
    "",
    "   ",
    "dog",
    "A Photo Of  THE  Eiffel Tower!!",
    "it's 2024, isn't it? 3.14 — 1,000",
    "tab\tand\nnewline",
    "naïve café, Über-straße",
    "emoji 😀 and 中文 and русский",
    "<odd> [brackets] {x} <",
    "x" * 300,
    "a very long prompt " * 30,
]


def validate_pipeline(paths: dict[str, Path], folder: Path, manifest: Manifest, text_spec: TextSpec) -> dict:
    """Each graph is loaded once; the runtime's reference embeddings are computed once for all image graphs."""

    runtime, failures, report = ZeroShotModel.from_onnx(folder), [], {}
    sessions = {kind: extensions_session(path, quiet=True) for kind, path in paths.items()}
    if "text" in sessions:
        report["text"] = check_text(sessions["text"], folder, text_spec, runtime, failures)
    images = sample_images()
    pngs = [encode(a) for a in images]
    want = runtime.embed_images(pngs) if {"image", "image_pixels"} & set(sessions) else None
    if "image" in sessions:
        report["image"] = check_image(sessions["image"], pngs, want, failures, encoded=True)
        report["image"] |= check_preprocessing(manifest, images, sessions["image"], failures)
    if "image_pixels" in sessions:
        report["image_pixels"] = check_image(sessions["image_pixels"], images, want, failures, encoded=False)
    if "image" in sessions and "image_pixels" in sessions:
        _same_variants(sessions["image"], sessions["image_pixels"], failures)
    if failures:
        raise ValidationError("pipeline export", failures)
    return report


def _run(session, feed: dict) -> np.ndarray:
    return session.run(None, feed)[0]


def _expect_error(session, feed: dict, marker: str, what: str, failures: list[str]) -> None:
    try:
        session.run(None, feed)
    except Exception as exc:  # onnxruntime raises its own exception types
        if marker not in str(exc):
            failures.append(f"{what} failed with an unexpected message: {str(exc)[:160]}")
        return
    failures.append(f"{what} did not fail")


# --- text -------------------------------------------------------------------------------------------------------
def hf_ids(folder: Path, texts: list[str], spec: TextSpec) -> np.ndarray:
    """The reference ids: the HF tokenizer's; for open_clip exports (no HF tokenizer) the Python runtime's, which
    equal open_clip's ``SimpleTokenizer`` (tests/test_openclip.py)."""
    from transformers import AutoTokenizer

    if spec.kind == "openclip":
        return TextTokenizer.from_folder(folder, spec).encode(texts).input_ids
    return tokenize(AutoTokenizer.from_pretrained(str(folder)), texts, spec)["input_ids"]


def check_text(session, folder: Path, spec: TextSpec, runtime, failures: list[str]) -> dict:

    texts = np.array(VALIDATION_TEXTS, dtype=object)
    ids = _run(extensions_session(text_model(folder, spec)), {"text": texts})
    want_ids = hf_ids(folder, VALIDATION_TEXTS, spec)
    bad = [t for t, a, b in zip(VALIDATION_TEXTS, ids, want_ids) if a.shape != b.shape or not np.array_equal(a, b)]
    if ids.shape != want_ids.shape or bad:
        failures.append(
            f"text: token ids differ from the HF tokenizer ({ids.shape} vs {want_ids.shape}; "
            f"{len(bad)} text(s), first {bad[0][:30] if bad else ''!r})"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the corpus truncates long prompts on purpose
        want = runtime.embed_texts(VALIDATION_TEXTS)
    got = _run(session, {"text": texts})
    cosine, diff = float(cosine_rows(got, want).min()), float(np.abs(got - want).max())
    if cosine < TEXT_COSINE:
        failures.append(f"text: embedding cosine {cosine:.6f} < {TEXT_COSINE} vs ZeroShotModel.embed_texts")
    _expect_error(session, {"text": np.array([], dtype=object)}, EMPTY_NODE, "text: an empty tensor", failures)
    return {"texts": len(texts), "ids_identical": not bad, "min_cosine": cosine, "max_abs_diff": diff}


# --- images -----------------------------------------------------------------------------------------------------
def sample_images(n: int = 6, seed: int = 0) -> list[np.ndarray]:
    """Noise and smooth gradients at several sizes and aspect ratios (HWC uint8)."""
    rng = np.random.default_rng(seed)
    sizes = [(64, 48), (40, 90), (120, 120), (33, 57), (300, 200), (17, 230)]
    images = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        if i % 2:
            y, x = np.mgrid[0:h, 0:w]
            smooth = np.stack([127 + 120 * np.sin(x / 7 + c) * np.cos(y / 11) for c in range(3)], -1)
            images.append(np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8))
        else:
            images.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return images


def encode(array: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def level_diff(got: np.ndarray, want: np.ndarray, spec) -> float:
    """Max difference of two ``pixel_values`` arrays [N, 3, H, W] in uint8 levels (normalisation undone)."""
    std = np.asarray(spec.std if spec.do_normalize else (1.0, 1.0, 1.0), np.float64).reshape(1, 3, 1, 1)
    return float((np.abs(got.astype(np.float64) - want) * std / spec.rescale_factor).max())


def preprocessing_diff(
    spec, fmt: str = "PNG", images: list | None = None, session=None, **options
) -> tuple[float, float]:
    """(max-abs-diff of ``pixel_values``, the same in uint8 levels): in-graph pre-processing of encoded images
    vs the Python runtime. ``session``: the pre-processing graph's, when the caller already has one."""

    session = session or extensions_session(image_model(spec, encoded=True))
    worst, levels = 0.0, 0.0
    for array in images if images is not None else sample_images():
        data = encode(array, fmt, **options)
        got, want = _run(session, {"image": np.frombuffer(data, np.uint8)}), preprocess([data], spec)
        worst, levels = max(worst, float(np.abs(got - want).max())), max(levels, level_diff(got, want, spec))
    return worst, levels


def check_image(session, inputs: list, want: np.ndarray, failures: list[str], encoded: bool) -> dict:
    """Embeddings of ``inputs`` (PNG bytes, or the same images as HWC pixels) vs the runtime's ``want``."""
    if encoded:
        got = np.concatenate([_run(session, {"image": np.frombuffer(d, np.uint8)}) for d in inputs])
    else:
        got = np.concatenate([_run(session, {"pixels": a}) for a in inputs])
    cosine = float(cosine_rows(got, want).min())
    name = "image" if encoded else "image (HWC pixels)"
    if cosine < IMAGE_COSINE:
        failures.append(f"{name}: embedding cosine {cosine:.6f} < {IMAGE_COSINE} vs ZeroShotModel.embed_images")
    return {"images": len(inputs), "min_cosine": cosine, "max_abs_diff": float(np.abs(got - want).max())}


def check_preprocessing(manifest: Manifest, images: list[np.ndarray], session, failures: list[str]) -> dict:
    """The bytes graph's pre-processing vs the runtime's (PNG checked, JPEG reported) and its decode guard."""

    pre = extensions_session(image_model(manifest.image, encoded=True))
    png, png_levels = preprocessing_diff(manifest.image, "PNG", images, pre)
    jpeg, jpeg_levels = preprocessing_diff(manifest.image, "JPEG", images[1::2], pre, quality=90)
    if png_levels > MAX_LEVELS:
        failures.append(
            f"image: in-graph pre-processing is {png_levels:.1f} uint8 levels from the Python runtime "
            f"on PNG input (allowed {MAX_LEVELS})"
        )
    _expect_error(
        session,
        {"image": np.frombuffer(b"this is not an image", np.uint8)},
        DECODE_NODE,
        "image: bytes that are no image",
        failures,
    )
    return {
        "pixel_max_abs_diff_png": png,
        "png_levels": png_levels,
        "pixel_max_abs_diff_jpeg": jpeg,
        "jpeg_levels": jpeg_levels,
    }


def _same_variants(bytes_session, pixels_session, failures: list[str]) -> None:
    array = sample_images(1, seed=3)[0]
    a = _run(bytes_session, {"image": np.frombuffer(encode(array), np.uint8)})
    b = _run(pixels_session, {"pixels": array})
    if not np.allclose(a, b, atol=1e-6, rtol=0):
        failures.append("image: the bytes graph and the HWC-pixels graph disagree on the same PNG")
