"""Helpers shared by the benchmark scripts: a random-weight ViT-B/32-shaped checkpoint, synthetic images,
labels, and timing with medians over repeats."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import clipforge  # noqa: F401  installs the torchvision import guard before any transformers import

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

WORK = Path(os.environ.get("CLIPFORGE_BENCH_DIR", Path(tempfile.gettempdir()) / "clipforge-bench"))


def b32_checkpoint() -> Path:
    """A random-weight CLIP with transformers' default (ViT-B/32) config, built once."""
    from clipforge.registry import get_family

    folder = WORK / "clip-b32-random"
    if not (folder / "model.safetensors").is_file():
        get_family("clip").save_tiny_checkpoint(folder, shape="base")
    return folder


def b32_export() -> Path:
    from clipforge.export import export_model

    out = WORK / "clip-b32-export"
    if not (out / "manifest.json").is_file():
        export_model(b32_checkpoint(), out, show_progress=False)
    return out


def images(n: int, seed: int = 0) -> list:
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = [(240, 320), (480, 640), (300, 300), (512, 384)]
    return [Image.fromarray(rng.integers(0, 256, (*sizes[i % 4], 3), dtype=np.uint8)) for i in range(n)]


def labels(n: int) -> list[str]:
    from clipforge.testing.corpus import COLOURS, NOUNS, SHAPES

    pool = [f"{c} {s}" for c in COLOURS for s in SHAPES] + NOUNS
    return pool[:n]


def timed(fn, repeats: int = 3) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result
