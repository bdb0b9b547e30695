"""A deterministic labelled image set of coloured shapes ("red circle", ...), as an image folder and parquet.

Layout under ``root``::

    classes.txt                      one class name per line, in label order
    <split>/<class name>/<i>.png     every fourth image is a JPEG (<i>.jpg) instead
    <split>.parquet                  columns image: struct<bytes, path> (HF ``Image``), label: int64 (HF ``ClassLabel``)

The parquet schema metadata carries the HF ``datasets`` features (so ``Dataset.from_parquet`` and
``load_dataset("parquet", ...)`` give a ``ClassLabel`` with the names) and a plain ``class_names`` JSON list.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

GENERATOR_VERSION = 2
# names from testing.corpus, so the tiny tokenizers know every word
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 215, 20),
    "purple": (140, 40, 170),
}
SHAPES = ("circle", "square", "triangle", "cross")
SPLITS = {"train": 40, "test": 10}
BACKGROUNDS = ("flat", "gradient", "stripes")
JPEG_EVERY = 4  # image i is a JPEG when i % JPEG_EVERY == JPEG_EVERY - 1


@dataclass
class ShapesDataset:
    root: Path
    class_names: list[str]
    splits: tuple[str, ...] = tuple(SPLITS)

    def folder(self, split: str) -> Path:
        """``root/<split>``: one sub-folder per class name."""
        return self.root / split

    def parquet(self, split: str) -> Path:
        return self.root / f"{split}.parquet"

    @property
    def classes_file(self) -> Path:
        return self.root / "classes.txt"


def class_names() -> list[str]:
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=255)
    elif shape == "square":
        draw.rectangle(box, fill=255)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=255)
    else:
        w = max(2, (x1 - x0) // 4)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        draw.rectangle((cx - w, y0, cx + w, y1), fill=255)
        draw.rectangle((x0, cy - w, x1, cy + w), fill=255)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A light background: flat, a linear gradient between two colours, or low-contrast stripes."""
    base = rng.integers(150, 256, 3).astype(np.float64)
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    other = rng.integers(150, 256, 3).astype(np.float64)
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 16)
    yy, xx = np.mgrid[0:size, 0:size] / size
    t = (np.cos(angle) * xx + np.sin(angle) * yy + 1) / 2  # 0..1 along a random direction
    if kind == "gradient":
        return base + (other - base) * t[..., None]
    if kind == "stripes":
        band = (np.floor(t * size / period * 2) % 2)[..., None]
        return base + band * np.clip(other - base, -40, 40)
    return np.broadcast_to(base, (size, size, 3)).copy()


def render(label: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """One image of class ``label``: the shape at a random position and size on a textured background."""
    colour, shape = class_names()[label].split(" ")
    pixels = _background(rng, size)
    side = int(rng.integers(size // 3, size * 3 // 4))
    x0, y0 = (int(v) for v in rng.integers(0, size - side, 2))
    fill = np.clip(np.array(COLOURS[colour]) + rng.integers(-25, 26, 3), 0, 255)
    mask = Image.new("L", (size, size), 0)
    _draw_shape(ImageDraw.Draw(mask), shape, (x0, y0, x0 + side, y0 + side))
    inside = np.asarray(mask)[..., None] > 0
    pixels = np.where(inside, fill, pixels) + rng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def hf_features(names: list[str]) -> dict:
    """The ``datasets.Features`` dict that HF writes into a parquet's ``huggingface`` schema metadata."""
    return {"image": {"_type": "Image"}, "label": {"names": list(names), "_type": "ClassLabel"}}


def _write_parquet(path: Path, rows: list[tuple[dict, int]], names: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {"image": pa.array([r[0] for r in rows], image_type), "label": pa.array([r[1] for r in rows], pa.int64())}
    )
    meta = {"huggingface": json.dumps({"info": {"features": hf_features(names)}}), "class_names": json.dumps(names)}
    pq.write_table(table.replace_schema_metadata(meta), path)


def _write_split(root: Path, split: str, per_class: int, rng: np.random.Generator, size: int) -> None:
    names, rows = class_names(), []
    for label, name in enumerate(names):
        (root / split / name).mkdir(parents=True)
        for i in range(per_class):
            jpeg = i % JPEG_EVERY == JPEG_EVERY - 1
            data = _encode(render(label, rng, size), "JPEG" if jpeg else "PNG")
            rel = f"{split}/{name}/{i}.{'jpg' if jpeg else 'png'}"
            (root / rel).write_bytes(data)
            rows.append(({"bytes": data, "path": rel}, label))
    _write_parquet(root / f"{split}.parquet", rows, names)


def make_shapes_dataset(
    root: str | Path,
    *,
    train_per_class: int = SPLITS["train"],
    test_per_class: int = SPLITS["test"],
    image_size: int = 64,
    seed: int = 0,
    splits: dict[str, int] | None = None,
) -> ShapesDataset:
    """Write the dataset to ``root`` (atomically: a temporary sibling renamed at the end).

    ``splits`` (``{name: images per class}``) replaces the train/test counts when given.
    """
    root = Path(root)
    splits = splits or {"train": train_per_class, "test": test_per_class}
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        for offset, (split, per_class) in enumerate(splits.items()):
            _write_split(tmp, split, per_class, np.random.default_rng([seed, offset]), image_size)
        (tmp / "classes.txt").write_text("".join(n + "\n" for n in class_names()))
        publish(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ShapesDataset(root, class_names(), tuple(splits))


def publish(tmp: Path, final: Path) -> None:
    """Rename the finished folder ``tmp`` to ``final``; if another process got there first, keep theirs."""
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.is_dir():
            raise


def cached_folder(cache_root: str | Path | None, key: str, marker: str, build) -> Path:
    """``fixture_root(cache_root)/key``, made once by ``build(dataset, tmp)`` in a temporary sibling and
    published by rename; ``marker`` is the file whose presence means the folder is complete."""
    root = fixture_root(cache_root)
    folder = root / key
    if (folder / marker).is_file():
        return folder
    dataset = shapes_dataset(cache_root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=root))
    try:
        build(dataset, tmp)
        publish(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def fixture_root(cache_root: str | Path | None = None) -> Path:
    """``cache_root``, else ``$CLIPFORGE_FIXTURE_CACHE``, else ``~/.cache/clipforge/fixtures``."""
    default = Path.home() / ".cache" / "clipforge" / "fixtures"
    return Path(cache_root or os.environ.get("CLIPFORGE_FIXTURE_CACHE") or default)


def shapes_dataset(cache_root: str | Path | None = None) -> ShapesDataset:
    """The default dataset, built once and cached under ``shapes-v<GENERATOR_VERSION>``."""
    root = fixture_root(cache_root) / f"shapes-v{GENERATOR_VERSION}"
    if not (root / "classes.txt").is_file():
        make_shapes_dataset(root)
    return ShapesDataset(root, class_names())


def noise_folder(root, classes=("red", "blue"), per_class: int = 3):
    """A labelled image folder (one sub-folder per class) of seeded random 32x32 PNGs: calibration data for
    tests whose outcome must not depend on what the images show."""
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root
