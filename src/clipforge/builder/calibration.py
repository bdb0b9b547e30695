"""Real calibration and evaluation inputs: images (with labels when the data has them) and prompts.

Labelled data is read by ``data.labelled.load_eval_data`` (split ``train`` where the data has splits): an
image folder with one sub-folder per class, a parquet/arrow file (class names from its metadata or a
``classes.txt`` beside it), a CSV/JSONL manifest or a ``datasets`` id. A flat folder of images gives unlabelled
calibration data. Without data, deterministic synthetic images and generic prompts are used (and the report
says so)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipforge.data.labelled import load_eval_data
from clipforge.data.sources import looks_like_hub_id, subsample
from clipforge.errors import InputError
from clipforge.export.cases import VALIDATION_PROMPTS, random_images
from clipforge.runtime.images import IMAGE_SUFFIXES, load_image
from clipforge.runtime.labels import DEFAULT_TEMPLATE

CALIBRATION_SPLIT = "train"


@dataclass
class CalibrationSet:
    images: list  # PIL images
    labels: list[int] | None
    class_names: list[str] | None
    source: str

    @property
    def prompts(self) -> list[str]:

        if self.class_names:
            return [DEFAULT_TEMPLATE.format(c) for c in self.class_names]
        return list(VALIDATION_PROMPTS)


def load_calibration(path: str | Path | None, samples: int, seed: int = 0) -> CalibrationSet:

    if path is None:
        return CalibrationSet(random_images(samples, seed), None, None, "synthetic (no --calibration-data)")
    path = Path(path)
    if path.is_dir() and _flat_images(path):
        files = _flat_images(path)
        return CalibrationSet(
            [load_image(files[i]) for i in _pick(len(files), samples, seed, str(path))], None, None, str(path)
        )

    if not path.exists() and not looks_like_hub_id(str(path)):
        raise InputError(
            f"calibration data {path} does not exist; pass an image folder, a parquet file or a dataset id"
        )

    data = load_eval_data(str(path), CALIBRATION_SPLIT)
    rows = _pick(len(data.images), samples, seed, data.source)
    return CalibrationSet(
        [load_image(data.images[i]) for i in rows], [data.labels[i] for i in rows], data.class_names, data.source
    )


def _flat_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` when it has no sub-folders (unlabelled data), else []."""
    if any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir()):
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _pick(n_total: int, samples: int, seed: int, where: str) -> list[int]:
    """``samples`` rows spread over the set (all of them when it is smaller), in dataset order."""

    return subsample(n_total, min(samples, n_total) if n_total else samples, where, seed)
