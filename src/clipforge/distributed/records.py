"""Engine-independent work units: encoded image files in, embedding records out. No Ray here: the Ray actor
(``distributed/ray.py``) is a thin wrapper that calls these, and tests run them without Ray."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field

import numpy as np

from clipforge.errors import InputError

RECORD_COLUMNS = ("path", "size", "mtime", "sha256", "embedding", "error")


@dataclass
class Records:
    """One batch of files after decoding and embedding: column arrays, one entry per input file. A file that
    could not be decoded has its reason in ``error`` and a zero embedding; every other ``error`` is ``""``."""

    path: np.ndarray  # str
    size: np.ndarray  # int64, bytes
    mtime: np.ndarray  # float64, seconds (NaN when the file could not be stat'ed)
    sha256: np.ndarray  # str, of the bytes embedded
    embedding: np.ndarray  # float32 [N, D]
    error: np.ndarray = field(default=None)  # str

    @property
    def ok(self) -> np.ndarray:
        return self.error == ""

    def as_columns(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in RECORD_COLUMNS}

    def rows(self, mask: np.ndarray | None = None) -> list[tuple]:
        """(path, size, mtime, sha256, embedding) for the files that were embedded: the index's upsert rows."""
        keep = self.ok if mask is None else mask
        return [(str(p), int(s), float(m), str(h), e) for p, s, m, h, e in
                zip(self.path[keep], self.size[keep], self.mtime[keep], self.sha256[keep], self.embedding[keep])]


def embed_files(model, paths, blobs, batch_size: int = 32, normalize: bool = True) -> Records:
    """Decode ``blobs`` (the encoded bytes of ``paths``) and embed them with ``model`` (a ``ZeroShotModel``),
    exactly as ``model.embed_images`` does on the same files. Undecodable files are recorded in
    ``error``, not raised."""
    from clipforge.runtime.images import load_image

    paths = [str(p) for p in paths]
    images, errors = [], []
    for path, blob in zip(paths, blobs):
        try:
            images.append(load_image(bytes(blob)))
            errors.append("")
        except InputError as exc:
            errors.append(_named(str(exc), path, len(blob)))
    ok = np.array([e == "" for e in errors], bool)
    vectors = np.zeros((len(paths), model.manifest.embed_dim), np.float32)
    if images:
        vectors[ok] = model.embed_images(images, batch_size, normalize=normalize)
    return Records(
        path=np.array(paths, dtype=object), size=np.array([len(b) for b in blobs], np.int64),
        mtime=np.array([_mtime(p) for p in paths], np.float64),
        sha256=np.array([hashlib.sha256(bytes(b)).hexdigest() for b in blobs], dtype=object),
        embedding=vectors, error=np.array(errors, dtype=object),
    )


def _named(message: str, path: str, size: int) -> str:
    """The decoder's message about an in-memory stream, naming the file instead."""
    return re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", repr(path), message.replace(f"<{size} bytes>", path))


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return float("nan")


class ParquetWriter:
    """Streams embedded files into one parquet file (``path``, ``sha256``, ``embedding`` list<float32>), written
    to a temporary file and renamed at the end: a failed run leaves no partial output."""

    def __init__(self, output, dim: int, rows_per_group: int = 8192):
        self.output, self.dim, self.rows_per_group = output, dim, rows_per_group
        self.pending: list[dict] = []
        self.count = 0

    def __enter__(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from clipforge._io import atomic_file

        self._atomic = atomic_file(self.output)
        tmp = self._atomic.__enter__()
        self.schema = pa.schema([("path", pa.string()), ("sha256", pa.string()),
                                 ("embedding", pa.list_(pa.float32(), self.dim))])
        self._writer = pq.ParquetWriter(tmp, self.schema)
        return self

    def write(self, columns: dict[str, np.ndarray]) -> None:
        """Append the files of one result batch that were embedded (``error == ""``)."""
        ok = columns["error"] == ""
        if ok.any():
            self.pending.append({k: columns[k][ok] for k in ("path", "sha256", "embedding")})
            self.count += int(ok.sum())
        if sum(len(p["path"]) for p in self.pending) >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if not self.pending:
            return
        vectors = np.concatenate([p["embedding"] for p in self.pending]).astype(np.float32)
        table = pa.table({
            "path": pa.array(np.concatenate([p["path"] for p in self.pending]).tolist(), pa.string()),
            "sha256": pa.array(np.concatenate([p["sha256"] for p in self.pending]).tolist(), pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(vectors.reshape(-1), self.dim),
        }, schema=self.schema)
        self._writer.write_table(table)
        self.pending = []

    def __exit__(self, *exc_info):
        if exc_info[0] is None:
            self._flush()
        self._writer.close()
        return self._atomic.__exit__(*exc_info)
