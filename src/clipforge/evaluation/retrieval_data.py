"""Image-caption pairs for zero-shot retrieval: a table (parquet/arrow, split folders, ``save_to_disk``), a
CSV/JSONL manifest or a hub id, with an image column and a caption column. A caption cell may hold a list
(COCO/Flickr style, several captions per image): every caption is a query and all of them count as correct
for their image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipforge.data import sources
from clipforge.data.sources import IMAGE_COLUMNS, pick_column, subsample
from clipforge.errors import InputError

CAPTION_COLUMNS = ("caption", "captions", "text", "sentence", "sentences", "sentences_raw", "raw")


@dataclass
class RetrievalData:
    images: list
    captions: list[str]
    caption_image: list[int]  # image index of every caption
    source: str
    split_size: int


def load_retrieval_data(
    dataset: str, split: str = "test", samples: int | None = None, columns: dict | None = None, seed: int = 0
) -> RetrievalData:
    columns, path = columns or {}, Path(dataset).expanduser()
    if path.is_dir():
        files = sources.split_files(path, split)
        if not files:
            raise InputError(
                f"{path} has no table files for split {split!r}; retrieval needs a parquet/arrow "
                "table or CSV/JSONL manifest with image and caption columns"
            )
        table, base = sources.read_tables(files), files[0].parent
        cols, rows, where = table.column_names, None, f"{path}:{split}"
    elif path.is_file() and path.suffix in sources.TABLE_SUFFIXES:
        table, base, where = sources.read_table(path), path.parent, str(path)
        cols, rows = table.column_names, None
    elif path.is_file() and path.suffix in sources.MANIFEST_SUFFIXES:
        rows, base, where = sources.read_manifest(path), path.parent, str(path)
        cols = list(rows[0]) if rows else []
    elif sources.looks_like_hub_id(dataset):
        return _from_hub(dataset, split, samples, columns, seed)
    else:
        raise InputError(
            f"dataset {dataset} does not exist or is not a parquet/arrow/csv/jsonl file, a dataset folder or a hub id"
        )
    n = table.num_rows if rows is None else len(rows)
    picked = subsample(n, samples, where, seed)
    image_col = pick_column(cols, columns.get("input_column"), IMAGE_COLUMNS, "input_column")
    caption_col = pick_column(cols, columns.get("caption_column"), CAPTION_COLUMNS, "caption_column")
    if rows is None:
        taken = table.take(picked)
        images, captions = taken.column(image_col).to_pylist(), taken.column(caption_col).to_pylist()
    else:
        images, captions = [rows[i][image_col] for i in picked], [rows[i][caption_col] for i in picked]
    return _pairs([sources.image_value(v, base) for v in images], captions, where, n)


def _from_hub(dataset, split, samples, columns, seed) -> RetrievalData:
    ds = sources.load_hub(dataset, split)
    where = f"{dataset}:{split}"
    image_col = pick_column(ds.column_names, columns.get("input_column"), IMAGE_COLUMNS, "input_column")
    caption_col = pick_column(ds.column_names, columns.get("caption_column"), CAPTION_COLUMNS, "caption_column")
    subset = ds.select(subsample(len(ds), samples, where, seed))
    return _pairs(sources.hub_image_values(subset, image_col), list(subset[caption_col]), where, len(ds))


def _pairs(images: list, cells: list, where: str, split_size: int) -> RetrievalData:
    captions, owner = [], []
    for i, cell in enumerate(cells):
        texts = cell if isinstance(cell, (list, tuple)) else [cell]
        texts = [t.get("raw", "") if isinstance(t, dict) else t for t in texts]  # Flickr30k-style dicts
        texts = [str(t).strip() for t in texts if t is not None and str(t).strip()]
        if not texts:
            raise InputError(f"{where}: row {i} has no caption; every image needs at least one")
        captions += texts
        owner += [i] * len(texts)
    return RetrievalData(images, captions, owner, where, split_size)
