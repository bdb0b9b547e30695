"""A deterministic labelled image set of coloured shapes ("red circle", ...), as an image folder and parquet."""

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

GENERATOR_VERSION = 1
COLOURS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220), "yellow": (235, 215, 20),
           "purple": (140, 40, 170)}
SHAPES = ("circle", "square", "triangle", "cross")
SPLITS = {"train": 40, "test": 10}


@dataclass
class ShapesDataset:
    root: Path
    class_names: list[str]

    def folder(self, split: str) -> Path:
        return self.root / split

    def parquet(self, split: str) -> Path:
        return self.root / f"{split}.parquet"


def class_names() -> list[str]:
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def _shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)
    else:
        w = max(2, (x1 - x0) // 4)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        draw.rectangle((cx - w, y0, cx + w, y1), fill=fill)
        draw.rectangle((x0, cy - w, x1, cy + w), fill=fill)


def render(label: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    colour, shape = class_names()[label].split(" ")
    background = tuple(int(v) for v in rng.integers(150, 256, 3))
    image = Image.new("RGB", (size, size), background)
    side = int(rng.integers(size // 3, size * 3 // 4))
    x0, y0 = (int(v) for v in rng.integers(0, size - side, 2))
    fill = tuple(int(np.clip(v + rng.integers(-25, 26), 0, 255)) for v in COLOURS[colour])
    _shape(ImageDraw.Draw(image), shape, (x0, y0, x0 + side, y0 + side), fill)
    noise = rng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(np.asarray(image, np.float64) + noise, 0, 255).astype(np.uint8))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write_split(root: Path, split: str, per_class: int, rng: np.random.Generator) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names, rows = class_names(), []
    for label, name in enumerate(names):
        (root / split / name).mkdir(parents=True)
        for i in range(per_class):
            data = _png(render(label, rng))
            rel = f"{split}/{name}/{i}.png"
            (root / rel).write_bytes(data)
            rows.append(({"bytes": data, "path": rel}, label))
    table = pa.table({"image": [r[0] for r in rows], "label": pa.array([r[1] for r in rows], pa.int64())})
    table = table.replace_schema_metadata({"class_names": json.dumps(names)})
    pq.write_table(table, root / f"{split}.parquet")


def make_shapes_dataset(root: str | Path, seed: int = 0, splits: dict[str, int] | None = None) -> ShapesDataset:
    """Write the dataset to ``root`` (atomically: a temporary sibling renamed at the end)."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        for offset, (split, per_class) in enumerate((splits or SPLITS).items()):
            _write_split(tmp, split, per_class, np.random.default_rng([seed, offset]))
        (tmp / "classes.txt").write_text("".join(n + "\n" for n in class_names()))
        os.replace(tmp, root) if not root.exists() else shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ShapesDataset(root, class_names())


def fixture_root(cache_root: str | Path | None = None) -> Path:
    default = Path.home() / ".cache" / "clipforge" / "fixtures"
    return Path(cache_root or os.environ.get("CLIPFORGE_FIXTURE_CACHE") or default)


def shapes_dataset(cache_root: str | Path | None = None) -> ShapesDataset:
    """The dataset, built once and cached (keyed by GENERATOR_VERSION)."""
    root = fixture_root(cache_root) / f"shapes-v{GENERATOR_VERSION}"
    if not (root / "classes.txt").is_file():
        make_shapes_dataset(root)
    return ShapesDataset(root, class_names())
