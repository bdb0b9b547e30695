"""Low-level readers shared by the classification and retrieval loaders: parquet/arrow tables (single files,
sharded splits, folders written by ``datasets``' ``save_to_disk``), CSV/JSONL manifests, HF hub datasets, and
the column/sample/image-value rules. Nothing here decodes images: values stay paths or encoded bytes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from clipforge.errors import InputError, require
from clipforge.runtime.images import IMAGE_SUFFIXES  # noqa: F401  (re-exported for labelled)

TABLE_SUFFIXES = (".parquet", ".arrow")
MANIFEST_SUFFIXES = (".csv", ".jsonl")
IMAGE_COLUMNS = ("image", "img", "jpg", "png", "image_path", "filepath", "path", "file")


def pick_column(columns: list[str], wanted: str | None, defaults: tuple[str, ...], key: str) -> str:
    """``wanted`` (from ``--column KEY=NAME``) or the first default present; errors name the columns that exist."""
    if wanted:
        if wanted not in columns:
            raise InputError(
                f"column {wanted!r} (columns={{{key!r}: {wanted!r}}}) not found; the dataset has: "
                f"{', '.join(columns) or 'no columns'}"
            )
        return wanted
    for name in defaults:
        if name in columns:
            return name
    raise InputError(
        f"no {key.replace('_column', '')} column found (looked for {', '.join(defaults)}); the dataset "
        f"has: {', '.join(columns) or 'no columns'}; pass columns={{{key!r}: 'NAME'}}"
    )


def subsample(n: int, samples: int | None, where: str, seed: int = 0) -> list[int]:
    """All row indices, or ``samples`` of them drawn at random (fixed seed) and kept in dataset order."""
    if n == 0:
        raise InputError(f"{where} is empty (0 rows); choose another split= or dataset")
    if samples is None:
        return list(range(n))
    if samples < 1:
        raise InputError(f"samples= must be at least 1, got {samples}")
    if samples > n:
        raise InputError(f"samples={samples} is larger than {where} ({n} rows); use at most {n} or leave it out")
    return sorted(np.random.default_rng(seed).choice(n, samples, replace=False).tolist())


def image_value(value, base: Path):
    """A table/manifest cell -> what ``load_image`` reads: bytes, a path (relative to ``base``) or a PIL image.
    HF ``Image`` cells are ``{"bytes": ..., "path": ...}``; anything else is passed on and, if unreadable, counted."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        value = value.get("path")
    if isinstance(value, str) and value:
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path
    return value


# --- tables -----------------------------------------------------------------------------------------------
def read_table(path: Path):
    """One parquet or arrow (IPC stream, as ``datasets`` writes, or IPC file) file as a pyarrow Table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        with pa.memory_map(str(path)) as source:
            try:
                return pa.ipc.open_stream(source).read_all()
            except pa.ArrowInvalid:
                source.seek(0)
                return pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"cannot read {path}: {str(exc).splitlines()[0]}; is it a parquet/arrow file?") from exc


def read_tables(paths: list[Path]):
    import pyarrow as pa

    tables = [read_table(p) for p in paths]
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="default")
    except pa.ArrowInvalid as exc:
        raise InputError(f"the files of this split have different columns ({exc}); pass one file") from exc


def split_files(folder: Path, split: str) -> list[Path] | None:
    """The table files of ``split`` in a dataset folder, or None when the folder is not a table dataset.

    Layouts: ``<split>.parquet``, ``<split>-*.parquet`` (sharded), ``data/<split>-*.parquet`` (hub repo),
    ``save_to_disk`` of a DatasetDict (``dataset_dict.json`` + ``<split>/``) or of a Dataset (``state.json``)."""
    if (folder / "state.json").is_file():
        return _saved_files(folder)
    if (folder / "dataset_dict.json").is_file():
        splits = json.loads((folder / "dataset_dict.json").read_text()).get("splits", [])
        if split not in splits:
            raise InputError(f"split {split!r} not found in {folder}; it has: {', '.join(splits)}")
        return _saved_files(folder / split)
    for pattern in (
        f"{split}.parquet",
        f"{split}.arrow",
        f"{split}-*.parquet",
        f"data/{split}-*.parquet",
        f"data/{split}.parquet",
        f"{split}/*.parquet",
    ):
        found = sorted(folder.glob(pattern))
        if found:
            return found
    tables = sorted(folder.glob("*.parquet")) + sorted(folder.glob("*.arrow")) + sorted(folder.glob("data/*.parquet"))
    if tables:
        names = sorted({p.stem.split("-")[0] for p in tables})
        raise InputError(f"split {split!r} not found in {folder}; its table files give: {', '.join(names)}")
    return None


def _saved_files(folder: Path) -> list[Path]:
    state = json.loads((folder / "state.json").read_text())
    return [folder / f["filename"] for f in state.get("_data_files", [])] or sorted(folder.glob("*.arrow"))


def class_names_from_metadata(table, label_col: str, folder: Path | None = None) -> list[str] | None:
    """Class names from a ``class_names`` JSON list in the schema metadata, the HF ``ClassLabel`` feature
    stored by ``datasets`` (schema metadata ``huggingface``), or a ``dataset_info.json`` beside the files."""
    meta = table.schema.metadata or {}
    if b"class_names" in meta:
        return json.loads(meta[b"class_names"])
    features = {}
    if b"huggingface" in meta:
        features = json.loads(meta[b"huggingface"]).get("info", {}).get("features", {})
    elif folder is not None and (folder / "dataset_info.json").is_file():
        features = json.loads((folder / "dataset_info.json").read_text()).get("features", {})
    feature = features.get(label_col) or {}
    return feature.get("names") if isinstance(feature, dict) else None


# --- manifests and the hub --------------------------------------------------------------------------------
def read_manifest(path: Path) -> list[dict]:
    """Rows of a CSV (with a header) or JSONL file."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path} line {number} is not JSON ({exc.msg}); one object per line") from exc
    return rows


def looks_like_hub_id(dataset: str) -> bool:
    path = Path(dataset)
    return (
        not path.exists()
        and not dataset.startswith((".", "/", "~"))
        and path.suffix not in (*TABLE_SUFFIXES, *MANIFEST_SUFFIXES)
        and dataset.count("/") <= 1
    )


def load_hub(dataset: str, split: str):
    """``datasets.load_dataset(dataset, split=split)`` with a one-line error."""

    datasets = require("datasets", "eval")
    try:
        return datasets.load_dataset(dataset, split=split)
    except Exception as exc:  # offline, unknown id, unknown split, gated, ...: all one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise InputError(
            f"cannot load dataset {dataset!r} split {split!r} (no local file or folder by that name either): {first}"
        ) from exc


def hub_image_values(ds, image_col: str) -> list:
    """Image cells without decoding (bytes or paths), so unreadable images are counted, not fatal."""
    from datasets import Image

    if isinstance(ds.features.get(image_col), Image):
        ds = ds.cast_column(image_col, Image(decode=False))
    return [image_value(v, Path(".")) for v in ds[image_col]]
