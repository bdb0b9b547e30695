"""Image-caption pairs for retrieval: parquet/csv/jsonl with an image and a caption column, or a hub id."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from clipforge.errors import InputError
from clipforge.evaluation.datasets import IMAGE_COLUMNS, _column, _image_value, _subsample

CAPTION_COLUMNS = ("caption", "text", "sentence", "captions")


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix == ".csv":
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    raise InputError(f"retrieval data {path} must be .parquet, .csv or .jsonl")


def load_retrieval_data(dataset: str, split: str, samples: int | None, columns: dict) -> tuple[list, list[str]]:
    path = Path(dataset)
    if path.is_dir() and (path / f"{split}.parquet").is_file():
        path = path / f"{split}.parquet"
    if path.is_file():
        rows = _rows(path)
    elif "/" in dataset and not path.exists():
        from clipforge.errors import require

        rows = list(require("datasets", "eval").load_dataset(dataset, split=split))
    else:
        raise InputError(f"dataset {dataset} does not exist; pass a parquet/csv/jsonl file or a hub id")
    cols = list(rows[0]) if rows else []
    image_col = _column(cols, columns.get("input_column"), IMAGE_COLUMNS, "input")
    caption_col = _column(cols, columns.get("caption_column"), CAPTION_COLUMNS, "caption")
    picked = [rows[i] for i in _subsample(len(rows), samples)]
    captions = [r[caption_col][0] if isinstance(r[caption_col], list) else r[caption_col] for r in picked]
    return [_image_value(r[image_col], path.parent if path.is_file() else Path(".")) for r in picked], captions
