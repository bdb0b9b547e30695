"""Real calibration and evaluation inputs: images (with labels when the data has them) and prompts.

Sources: an image folder with one sub-folder per class, a flat folder of images, or a parquet file with an
``image`` column ({bytes, path}) and a ``label`` column (class names in the schema metadata ``class_names``
or a ``classes.txt`` beside the file). Without data, deterministic synthetic images and generic prompts are used
(and the report says so)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipforge.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
CALIBRATION_TEMPLATE = "a photo of a {}."


@dataclass
class CalibrationSet:
    images: list  # PIL images
    labels: list[int] | None
    class_names: list[str] | None
    source: str

    @property
    def prompts(self) -> list[str]:
        from clipforge.export.cases import VALIDATION_PROMPTS

        if self.class_names:
            return [CALIBRATION_TEMPLATE.format(c) for c in self.class_names]
        return list(VALIDATION_PROMPTS)


def load_calibration(path: str | Path | None, samples: int, seed: int = 0) -> CalibrationSet:
    if path is None:
        from clipforge.export.cases import random_images

        return CalibrationSet(random_images(samples, seed), None, None, "synthetic (no --calibration-data)")
    path = Path(path)
    if not path.exists():
        raise InputError(f"calibration data {path} does not exist; pass an image folder or a parquet file")
    if path.suffix == ".parquet":
        return _from_parquet(path, samples, seed)
    return _from_folder(path, samples, seed)


def _spread(n_total: int, samples: int, seed: int) -> list[int]:
    """``samples`` indices spread over the set (all classes represented), in a fixed order."""
    if samples >= n_total:
        return list(range(n_total))
    return sorted(np.random.default_rng(seed).choice(n_total, samples, replace=False).tolist())


def _from_folder(root: Path, samples: int, seed: int) -> CalibrationSet:
    from clipforge.runtime.images import load_image

    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files = [(p, i) for i, c in enumerate(classes) for p in sorted((root / c).iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES]
    if not classes:
        files = [(p, None) for p in sorted(root.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise InputError(f"no images in {root}; expected class sub-folders of images, or image files")
    picked = [files[i] for i in _spread(len(files), samples, seed)]
    labels = [label for _, label in picked] if classes else None
    return CalibrationSet([load_image(p) for p, _ in picked], labels, classes or None, str(root))


def _from_parquet(path: Path, samples: int, seed: int) -> CalibrationSet:
    import pyarrow.parquet as pq

    from clipforge.runtime.images import load_image

    table = pq.read_table(path)
    if "image" not in table.column_names:
        raise InputError(f"{path} has no 'image' column (columns: {', '.join(table.column_names)})")
    rows = _spread(table.num_rows, samples, seed)
    images = [load_image(table["image"][i].as_py()["bytes"]) for i in rows]
    labels = [int(table["label"][i].as_py()) for i in rows] if "label" in table.column_names else None
    return CalibrationSet(images, labels, _class_names(path, table.schema.metadata or {}), str(path))


def _class_names(path: Path, metadata: dict) -> list[str] | None:
    if b"class_names" in metadata:
        return json.loads(metadata[b"class_names"])
    beside = path.parent / "classes.txt"
    return beside.read_text().split("\n")[:-1] if beside.is_file() else None
