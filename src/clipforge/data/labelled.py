"""Labelled images for zero-shot classification, from local data or a HF ``datasets`` id.

``load_eval_data(dataset, split, ...)`` accepts, in this order:

* a folder holding table files for the split (``<split>.parquet``, sharded, ``data/<split>-*.parquet``) or
  written by ``datasets``' ``save_to_disk``;
* an image folder, ``<root>/<split>/<class>/<image>`` or ``<root>/<class>/<image>``;
* a ``.parquet`` / ``.arrow`` file, or a ``.csv`` / ``.jsonl`` manifest (``path,label``; paths relative to it);
* a hub id (``uoft-cs/cifar100``), loaded with ``datasets``.

Class names come from ``class_names`` (``--class-names FILE``), else the data: the ``ClassLabel`` feature, a
``class_names`` metadata list, folder names, or the sorted label strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipforge.data import sources
from clipforge.data.sources import IMAGE_COLUMNS, IMAGE_SUFFIXES, pick_column, subsample
from clipforge.errors import InputError

LABEL_COLUMNS = ("label", "labels", "fine_label", "class", "target", "category")


@dataclass
class EvalData:
    images: list  # paths, encoded bytes or PIL images; decoded lazily by the evaluator
    labels: list[int]  # index into class_names
    class_names: list[str]
    source: str
    split_size: int = 0  # rows in the split before --samples

    def __post_init__(self):
        self.split_size = self.split_size or len(self.images)


def load_eval_data(
    dataset: str,
    split: str = "test",
    samples: int | None = None,
    columns: dict | None = None,
    class_names: list[str] | None = None,
    seed: int = 0,
) -> EvalData:
    columns, path = columns or {}, Path(dataset).expanduser()
    pick = (samples, seed)  # how many rows, and the seed that draws them
    if path.is_dir():
        files = sources.split_files(path, split)
        if files:
            return _from_table(files, f"{path}:{split}", columns, class_names, pick)
        return _from_folder(_image_root(path, split), pick, class_names)
    if path.is_file():
        if path.suffix in sources.TABLE_SUFFIXES:
            return _from_table([path], str(path), columns, class_names, pick)
        if path.suffix in sources.MANIFEST_SUFFIXES:
            return _from_manifest(path, columns, class_names, pick)
        raise InputError(f"dataset file {path} must be .parquet, .arrow, .csv or .jsonl (or pass a folder)")
    if sources.looks_like_hub_id(dataset):
        return _from_hub(dataset, split, columns, class_names, pick)
    raise InputError(f"dataset {dataset} does not exist; pass a folder, a parquet/arrow/csv/jsonl file or a hub id")


# --- labels -----------------------------------------------------------------------------------------------
def label_ids(raw: list, class_names: list[str] | None, where: str) -> tuple[list[int], list[str]]:
    """Labels given as class indices or as class-name strings -> (indices, class names)."""
    missing = [i for i, x in enumerate(raw) if x is None or (isinstance(x, str) and not x.strip())]
    if missing:
        raise InputError(f"{where}: {len(missing)} row(s) have no label (first: row {missing[0]}); fill or drop them")
    if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in raw):
        return _int_labels([int(x) for x in raw], class_names, where)
    text = [str(x).strip() for x in raw]
    if class_names is not None and not set(text) <= set(class_names) and all(t.isdigit() for t in text):
        return _int_labels([int(t) for t in text], class_names, where)  # a CSV column of class indices
    names = list(class_names) if class_names is not None else sorted(set(text))
    unknown = sorted(set(text) - set(names))
    if unknown:
        shown = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
        raise InputError(
            f"{where}: unknown label(s) {unknown[:5]}{' ...' if len(unknown) > 5 else ''}; known classes: {shown}"
        )
    index = {n: i for i, n in enumerate(names)}
    return [index[t] for t in text], names


def _int_labels(raw: list[int], class_names: list[str] | None, where: str) -> tuple[list[int], list[str]]:
    if class_names is None:
        raise InputError(
            f"{where}: labels are class indices but the data names no classes; pass class_names= "
            "(the class names in label order)"
        )
    bad = sorted({x for x in raw if not 0 <= x < len(class_names)})
    if bad:
        hint = " (-1 usually marks an unlabelled split, e.g. a hidden test set)" if bad[0] < 0 else ""
        raise InputError(
            f"{where}: label {bad[0]} is out of range for {len(class_names)} classes "
            f"(valid: 0..{len(class_names) - 1}){hint}"
        )
    return raw, list(class_names)


# --- sources ----------------------------------------------------------------------------------------------
def _image_root(path: Path, split: str) -> Path:
    """``<root>/<split>`` when it exists; ``<root>`` when it holds class folders directly; an error naming the
    splits when ``<root>`` holds split folders (folders of folders) but not ``split``."""
    if (path / split).is_dir():
        return path / split
    subdirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    nested = [d for d in subdirs if any(c.is_dir() for c in d.iterdir())]
    if subdirs and len(nested) == len(subdirs):
        raise InputError(f"split {split!r} not found in {path}; it has: {', '.join(d.name for d in nested)}")
    return path


def _from_folder(root: Path, pick, class_names) -> EvalData:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise InputError(
            f"{root} has no class sub-folders; expected <root>/<class name>/<image> "
            f"(or <root>/<split>/<class name>/<image>)"
        )
    files = [(p, c) for c in classes for p in sorted((root / c).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    picked = [files[i] for i in subsample(len(files), pick[0], f"image folder {root}", pick[1])]
    labels, names = label_ids([c for _, c in picked], class_names or classes, f"image folder {root}")
    return EvalData([p for p, _ in picked], labels, names, str(root), len(files))


def _from_table(files: list[Path], where: str, columns, class_names, pick) -> EvalData:
    table = sources.read_tables(files)
    image_col = pick_column(table.column_names, columns.get("input_column"), IMAGE_COLUMNS, "input_column")
    label_col = pick_column(table.column_names, columns.get("label_column"), LABEL_COLUMNS, "label_column")
    names = class_names or sources.class_names_from_metadata(table, label_col, files[0].parent)
    rows = table.take(subsample(table.num_rows, pick[0], where, pick[1]))
    labels, names = label_ids(rows.column(label_col).to_pylist(), names, where)
    images = [sources.image_value(v, files[0].parent) for v in rows.column(image_col).to_pylist()]
    return EvalData(images, labels, names, where, table.num_rows)


def _from_manifest(path: Path, columns, class_names, pick) -> EvalData:
    rows = sources.read_manifest(path)
    cols = list(rows[0]) if rows else []
    image_col = pick_column(cols, columns.get("input_column"), IMAGE_COLUMNS, "input_column") if rows else None
    label_col = pick_column(cols, columns.get("label_column"), LABEL_COLUMNS, "label_column") if rows else None
    picked = [rows[i] for i in subsample(len(rows), pick[0], f"manifest {path}", pick[1])]
    labels, names = label_ids([r.get(label_col) for r in picked], class_names, f"manifest {path}")
    return EvalData(
        [sources.image_value(r.get(image_col), path.parent) for r in picked], labels, names, str(path), len(rows)
    )


def _from_hub(dataset: str, split: str, columns, class_names, pick) -> EvalData:
    ds = sources.load_hub(dataset, split)
    where = f"{dataset}:{split}"
    image_col = pick_column(ds.column_names, columns.get("input_column"), IMAGE_COLUMNS, "input_column")
    label_col = pick_column(ds.column_names, columns.get("label_column"), LABEL_COLUMNS, "label_column")
    names = class_names or getattr(ds.features[label_col], "names", None)
    subset = ds.select(subsample(len(ds), pick[0], where, pick[1]))
    labels, names = label_ids(list(subset[label_col]), names, where)
    return EvalData(sources.hub_image_values(subset, image_col), labels, names, where, len(ds))
