"""Export validates the runtime, not just the graphs: the written folder is loaded with the torch-free runtime's
tokenizer and pre-processing, whose token ids and pixel values must equal the reference library's (the
checkpoint's HF tokenizer and image processor, or open_clip's) on the tricky texts and odd images of
``export.samples``. Every mismatch is collected; ``check_runtime`` returns them as one-line failures."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from clipforge.errors import ClipforgeError, InputError
from clipforge.export.cases import NAFLEX_BUDGETS, tokenize
from clipforge.export.samples import TRICKY_TEXTS, odd_images
from clipforge.runtime.images import preprocess
from clipforge.runtime.patches import with_max_patches
from clipforge.runtime.text import TextTokenizer
from clipforge.specs import ImageSpec, TextSpec

PIXEL_ATOL = 1e-5  # one 8-bit step is ~1.5e-2 after normalisation: anything above this is a real difference


def check_runtime(folder: Path, tokenizer, processor, text: TextSpec, image: ImageSpec | None) -> list[str]:
    """Failures of ``folder``'s runtime tokenizer (and pre-processing, unless ``image`` is None: an export at a
    resolution the reference processor does not produce) against ``tokenizer`` and ``processor``."""
    failures = _check_text(folder, tokenizer, text)
    if image is not None:
        failures += _check_pixels(processor, image)
    return failures


def _check_text(folder: Path, tokenizer, spec: TextSpec) -> list[str]:
    try:
        runtime = TextTokenizer.from_folder(folder, spec)
    except (ClipforgeError, ValueError, KeyError) as exc:  # a tokenizer.json the runtime cannot read
        return [f"the runtime cannot load the exported tokenizer ({str(exc).splitlines()[0]})"]
    bad = []
    for text in TRICKY_TEXTS:  # one at a time: a "longest"-padded batch would hide which text differs
        got = runtime.encode([text])
        with warnings.catch_warnings():  # a slow SigLIP tokenizer warns on texts that end in "</s>"
            warnings.filterwarnings("ignore", message="This sequence already has")
            want = tokenize(tokenizer, [text], spec)  # lower-cased first where the spec says so
        same = np.array_equal(got.input_ids, want["input_ids"])
        if same and spec.uses_attention_mask:
            same = np.array_equal(got.attention_mask, want["attention_mask"])
        if not same:
            bad.append((text, got.input_ids[0], want["input_ids"][0]))
    if not bad:
        return []
    text, got, want = bad[0]
    at = _first_difference(got, want)
    return [
        f"runtime tokenizer (text.kind {spec.kind!r}) gives other ids than {type(tokenizer).__name__} on "
        f"{len(bad)} of {len(TRICKY_TEXTS)} test texts, first {text[:40]!r}: from position {at} "
        f"{_ids(got[at:])} vs {_ids(want[at:])}"
    ]


def _check_pixels(processor, spec: ImageSpec) -> list[str]:
    images = odd_images(deep_modes=spec.convention == "hf")
    bad = []
    for image in images:
        try:
            got = preprocess([image], spec)
        except InputError:  # refused in one line (a side that rounds to 0 pixels): not a silent difference
            continue
        if spec.naflex:
            bad += _naflex_differences(processor, image, spec)
            continue
        want = np.asarray(processor(images=[image], return_tensors="np")["pixel_values"], dtype=np.float32)
        if got.shape != want.shape:
            bad.append(f"{image.mode} {image.size[0]}x{image.size[1]}: shape {got.shape} vs {want.shape}")
        elif (diff := float(np.abs(got - want).max())) > PIXEL_ATOL:
            bad.append(f"{image.mode} {image.size[0]}x{image.size[1]}: max abs diff {diff:.2e}")
    if not bad:
        return []
    return [
        f"runtime pre-processing differs from {type(processor).__name__} on {len(bad)} of {len(images)} test "
        f"images, first {bad[0]}"
    ]


def _naflex_differences(processor, image, spec: ImageSpec) -> list[str]:
    """NaFlex: the three arrays must be equal (patches, mask, grid) at the folder's budget and the validation
    budgets."""
    bad = []
    for budget in sorted({*NAFLEX_BUDGETS, spec.max_patches}):
        got = preprocess([image], with_max_patches(spec, budget)).feed()
        want = processor(images=[image], return_tensors="np", max_num_patches=budget)
        for name, array in got.items():
            if not np.array_equal(array, np.asarray(want[name])):
                bad.append(f"{image.mode} {image.size[0]}x{image.size[1]} at {budget} patches: {name} differs")
    return bad


def _first_difference(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


def _ids(ids: np.ndarray, n: int = 6) -> str:
    ids = [int(i) for i in ids]
    return "[" + ", ".join(map(str, ids[:n])) + (", …]" if len(ids) > n else "]")
