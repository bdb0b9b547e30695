"""Labelled images from local data (image folder, parquet/arrow, CSV/JSONL manifest) or a HF datasets id."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipforge.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
IMAGE_COLUMNS = ("image", "img", "pixel_values", "path", "file")
LABEL_COLUMNS = ("label", "labels", "fine_label", "class")


@dataclass
class EvalData:
    images: list  # PIL images, paths or encoded bytes
    labels: list[int]
    class_names: list[str]
    source: str
    captions: list[str] = field(default_factory=list)  # retrieval data


def _column(columns: list[str], wanted: str | None, defaults: tuple[str, ...], what: str) -> str:
    if wanted:
        if wanted not in columns:
            raise InputError(f"{what} column {wanted!r} not found; the dataset has: {', '.join(columns)}")
        return wanted
    for name in defaults:
        if name in columns:
            return name
    raise InputError(f"no {what} column found (tried {', '.join(defaults)}); columns: {', '.join(columns)}; "
                     f"pass --column {what}_column=NAME")


def _subsample(n: int, samples: int | None, seed: int = 0) -> list[int]:
    if n == 0:
        raise InputError("the split is empty; choose another --split or dataset")
    if samples is None:
        return list(range(n))
    if samples > n:
        raise InputError(f"--samples {samples} is larger than the split ({n} rows); use at most {n}")
    return sorted(np.random.default_rng(seed).choice(n, samples, replace=False).tolist())


def _label_ids(raw: list, class_names: list[str] | None) -> tuple[list[int], list[str]]:
    """Labels given as ints (index into class_names) or as class-name strings."""
    if all(isinstance(x, (int, np.integer)) for x in raw):
        if class_names is None:
            raise InputError("labels are integers but no class names were found; pass --class-names FILE")
        bad = [x for x in raw if not 0 <= int(x) < len(class_names)]
        if bad:
            raise InputError(f"label {bad[0]} is out of range for {len(class_names)} class names")
        return [int(x) for x in raw], class_names
    names = class_names or sorted({str(x) for x in raw})
    unknown = sorted({str(x) for x in raw} - set(names))
    if unknown:
        raise InputError(f"unknown label(s) {unknown[:5]}; known classes: {', '.join(names[:20])}")
    index = {n: i for i, n in enumerate(names)}
    return [index[str(x)] for x in raw], names


def load_eval_data(dataset: str, split: str = "test", samples: int | None = None, columns: dict | None = None,
                   class_names: list[str] | None = None) -> EvalData:
    columns = columns or {}
    path = Path(dataset)
    if path.is_dir():
        split_dir = path / split
        if (path / f"{split}.parquet").is_file():
            return _from_table(path / f"{split}.parquet", samples, columns, class_names)
        return _from_folder(split_dir if split_dir.is_dir() else path, samples, class_names)
    if path.is_file():
        if path.suffix in (".parquet", ".arrow"):
            return _from_table(path, samples, columns, class_names)
        if path.suffix in (".csv", ".jsonl"):
            return _from_manifest(path, samples, columns, class_names)
        raise InputError(f"dataset file {path} must be .parquet, .arrow, .csv or .jsonl")
    if "/" in dataset and not dataset.startswith((".", "/")):
        return _from_hub(dataset, split, samples, columns, class_names)
    raise InputError(f"dataset {dataset} does not exist; pass a folder, a parquet/arrow/csv/jsonl file or a hub id")


def _from_folder(root: Path, samples, class_names) -> EvalData:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise InputError(f"{root} has no class sub-folders; expected <root>/<class name>/<image>")
    files = [(p, c) for c in classes for p in sorted((root / c).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    picked = [files[i] for i in _subsample(len(files), samples)]
    labels, names = _label_ids([c for _, c in picked], class_names or classes)
    return EvalData([p for p, _ in picked], labels, names, str(root))


def _from_table(path: Path, samples, columns, class_names) -> EvalData:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix == ".arrow":
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_stream(source).read_all()
    else:
        table = pq.read_table(path)
    image_col = _column(table.column_names, columns.get("input_column"), IMAGE_COLUMNS, "input")
    label_col = _column(table.column_names, columns.get("label_column"), LABEL_COLUMNS, "label")
    meta = table.schema.metadata or {}
    names = class_names or (json.loads(meta[b"class_names"]) if b"class_names" in meta else None)
    names = names or _names_from_hf_features(meta, label_col)
    rows = _subsample(table.num_rows, samples)
    images = [_image_value(table[image_col][i].as_py(), path.parent) for i in rows]
    labels, names = _label_ids([table[label_col][i].as_py() for i in rows], names)
    return EvalData(images, labels, names, str(path))


def _names_from_hf_features(meta: dict, label_col: str) -> list[str] | None:
    """Class names stored by HF datasets (ClassLabel) in the parquet's b"huggingface" metadata."""
    if b"huggingface" not in meta:
        return None
    feature = json.loads(meta[b"huggingface"]).get("info", {}).get("features", {}).get(label_col, {})
    return feature.get("names")


def _image_value(value, base: Path):
    if isinstance(value, dict):
        return value.get("bytes") or (base / value["path"])
    if isinstance(value, str):
        return base / value if not Path(value).is_absolute() else Path(value)
    return value


def _from_manifest(path: Path, samples, columns, class_names) -> EvalData:
    if path.suffix == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    cols = list(rows[0]) if rows else []
    image_col = _column(cols, columns.get("input_column"), IMAGE_COLUMNS, "input")
    label_col = _column(cols, columns.get("label_column"), LABEL_COLUMNS, "label")
    picked = [rows[i] for i in _subsample(len(rows), samples)]
    raw = [r[label_col] for r in picked]
    raw = [int(x) if isinstance(x, str) and x.isdigit() and class_names else x for x in raw]
    labels, names = _label_ids(raw, class_names)
    return EvalData([_image_value(r[image_col], path.parent) for r in picked], labels, names, str(path))


def _from_hub(dataset: str, split, samples, columns, class_names) -> EvalData:
    from clipforge.errors import require

    datasets = require("datasets", "eval")
    try:
        ds = datasets.load_dataset(dataset, split=split)
    except Exception as exc:
        raise InputError(f"cannot load dataset {dataset!r} split {split!r} ({type(exc).__name__}); check the id "
                         "and network, or pass a local folder/parquet") from exc
    image_col = _column(ds.column_names, columns.get("input_column"), IMAGE_COLUMNS, "input")
    label_col = _column(ds.column_names, columns.get("label_column"), LABEL_COLUMNS, "label")
    feature = ds.features[label_col]
    names = class_names or getattr(feature, "names", None)
    rows = _subsample(len(ds), samples)
    subset = ds.select(rows)
    labels, names = _label_ids(list(subset[label_col]), names)
    return EvalData(list(subset[image_col]), labels, names, f"{dataset}:{split}")
