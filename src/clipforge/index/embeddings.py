"""Precomputed image embeddings as index rows: the parquet ``clipforge embed`` writes (locally or with
``--engine ray``) read in batches, checked against the index's model, turned into ``Row`` records without
reading any image file.

The file: a ``path`` column (files written before the column was renamed say ``name``), an ``embedding``
column (fixed-size or variable list of float32), optionally ``size``, ``mtime`` and ``sha256``; its schema
metadata ``clipforge.model`` holds the model record (family, source, manifest sha256, embed_dim) when
clipforge wrote it. Per row, size and mtime come from the file's columns when present, else from ``stat`` of
the path when the file exists here, else they are unknown (size -1, mtime 0: a later ``clipforge index`` of
that folder re-embeds the file); sha256 comes from the column or is unknown (empty). Paths are
resolved (relative ones against the current folder, symlinks followed) as ``clipforge index`` resolves them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipforge.errors import InputError, require
from clipforge.index.base import ModelRecord, Row

MODEL_KEY = b"clipforge.model"
PATH_COLUMNS = ("path", "name")


def model_metadata(record: ModelRecord) -> dict[bytes, bytes]:
    """The parquet schema metadata that names the model of the embeddings (written by ``clipforge embed``)."""
    fields = {k: getattr(record, k) for k in ("family", "source", "manifest_sha256", "embed_dim")}
    return {MODEL_KEY: json.dumps(fields, sort_keys=True).encode()}


@dataclass(frozen=True)
class EmbeddingsFile:
    """An opened embeddings parquet: its rows, dimension, path column and the model it names (if any)."""

    path: Path
    rows: int
    dim: int
    path_column: str
    model: dict | None

    @classmethod
    def open(cls, path: str | Path) -> EmbeddingsFile:
        pq = require("pyarrow.parquet", "ray")
        path = Path(path).expanduser()
        try:
            meta = pq.ParquetFile(path)
        except (OSError, ValueError) as exc:
            raise InputError(
                f"cannot read embeddings {path} ({exc}); pass a parquet written by clipforge embed"
            ) from None
        schema = meta.schema_arrow
        column = next((c for c in PATH_COLUMNS if c in schema.names), None)
        if column is None or "embedding" not in schema.names:
            raise InputError(
                f"{path} has columns {', '.join(schema.names)}; an embeddings file needs 'path' and 'embedding' "
                "(as clipforge embed writes)"
            )
        dim = _dim(meta, schema, path)
        raw = (schema.metadata or {}).get(MODEL_KEY)
        return cls(path, meta.metadata.num_rows, dim, column, json.loads(raw) if raw else None)

    def check(self, record: ModelRecord, where: str) -> None:
        """Refuse embeddings of another dimension or of another model than ``record`` (one line)."""
        if self.dim != record.embed_dim:
            raise InputError(
                f"{self.path} holds embeddings of dim {self.dim}; {where} holds dim {record.embed_dim} "
                f"({record.describe()}); import into another database"
            )
        if self.model and self.model.get("manifest_sha256") != record.manifest_sha256:
            theirs = (
                f"{self.model.get('family')} {self.model.get('source')} (manifest {self.model['manifest_sha256'][:12]})"
            )
            raise InputError(
                f"{self.path} holds embeddings of {theirs}, not of {record.describe()} that {where} uses; "
                "import with that model (-m) into another database"
            )

    def batches(self, batch_size: int) -> Iterator[list[Row]]:
        """The rows, ``batch_size`` at a time."""
        pq = require("pyarrow.parquet", "ray")
        file = pq.ParquetFile(self.path)
        names = [c for c in (self.path_column, "embedding", "size", "mtime", "sha256") if c in file.schema_arrow.names]
        for batch in file.iter_batches(batch_size=batch_size, columns=names):
            yield _rows(batch.to_pydict() | {"embedding": _matrix(batch.column("embedding"), self.dim)}, self)


def _dim(meta, schema, path: Path) -> int:
    kind = schema.field("embedding").type
    size = getattr(kind, "list_size", -1)
    if size and size > 0:
        return int(size)
    if meta.metadata.num_rows == 0:
        raise InputError(f"{path} holds no embeddings; pass a parquet written by clipforge embed")
    first = next(meta.iter_batches(batch_size=1, columns=["embedding"]))
    return len(first.column("embedding")[0])


def _matrix(column, dim: int) -> np.ndarray:
    values = column.flatten().to_numpy(zero_copy_only=False)
    if values.size != len(column) * dim:
        raise InputError(f"embeddings of unequal length in one file (expected {dim} values each)")
    return np.asarray(values, np.float32).reshape(len(column), dim)


def _rows(columns: dict, file: EmbeddingsFile) -> list[Row]:
    paths = columns[file.path_column]
    matrix = columns["embedding"]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = matrix / np.where(norms > 0, norms, 1)
    out = []
    for i, raw in enumerate(paths):
        path = os.path.realpath(os.path.expanduser(raw))
        size, mtime = _stat(path, columns, i)
        sha = (columns.get("sha256") or [""] * len(paths))[i] or ""
        out.append(Row(path, size, mtime, sha, matrix[i]))
    return out


def _stat(path: str, columns: dict, i: int) -> tuple[int, float]:
    if "size" in columns and "mtime" in columns:
        return int(columns["size"][i]), float(columns["mtime"][i])
    try:
        st = os.stat(path)
    except OSError:
        return -1, 0.0
    return st.st_size, st.st_mtime
