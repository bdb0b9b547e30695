"""Engine-independent work units for distributed runs, no Ray here: the Ray actor (``distributed/ray.py``) is a
thin wrapper that calls these on each batch, and tests can run them without Ray.

A batch is a dict of columns (``FILE_COLUMNS``: one entry per file, as listed on the driver). ``read_files``
adds the encoded bytes; ``decode_batch`` turns them into the index's ``Decoded`` records (sha256 of the bytes,
resized pixels or the reason the file is unreadable) with the same calls the local engines make; then either
``embedding_columns`` (embed -> parquet) or ``IndexWriter`` (index -> PostgreSQL) finishes the batch."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from clipforge._io import atomic_file
from clipforge.errors import InputError
from clipforge.index import Batch, Decoded, EmbeddingModel, FileState, Index, header_info
from clipforge.runtime.images import decode_photo, resized_pixels, to_pixel_values
from clipforge.runtime.scoring import l2_normalize
from clipforge.specs import ImageSpec

FILE_COLUMNS = ("path", "size", "mtime", "known")  # known: sha256 of the file's stored index row, or ""
STATUSES = ("added", "updated", "unchanged", "unreadable")


def file_table(states: list[FileState], known: dict[str, str | None] | None = None):
    """The files the driver hands to the engine, one row each (``FILE_COLUMNS``), as a compact Arrow table
    (~100 bytes a file plus its path, instead of a Python dict per file)."""
    import pyarrow as pa

    known = known or {}
    return pa.table(
        {
            "path": pa.array([s.path for s in states], pa.string()),
            "size": pa.array([s.size for s in states], pa.int64()),
            "mtime": pa.array([s.mtime for s in states], pa.float64()),
            "known": pa.array([known.get(s.path) or "" for s in states], pa.string()),
        }
    )


def stat_files(paths: list[Path]) -> list[FileState]:
    """File states for paths as given (a file that cannot be stat'ed gets size -1; reading it reports why)."""
    states = []
    for path in paths:
        try:
            st = os.stat(path)
            states.append(FileState(str(path), st.st_size, st.st_mtime))
        except OSError:
            states.append(FileState(str(path), -1, float("nan")))
    return states


def read_files(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add ``data`` (the files' bytes; empty when unreadable) and ``read_error`` ("" when read) to a batch."""
    data, errors = [], []
    for path in batch["path"]:
        try:
            data.append(Path(path).read_bytes())
            errors.append("")
        except OSError as exc:
            data.append(b"")
            errors.append(f"cannot be read ({exc.strerror or exc})")
    return {**batch, "data": np.array(data, dtype=object), "read_error": np.array(errors, dtype=object)}


def decode_blob(
    state: FileState, data: bytes, read_error: str, known_sha: str, spec: ImageSpec, draft: tuple[int, int] | None
) -> Decoded:
    """One file's bytes -> ``Decoded``, as the index's decoder does from a path: a file whose content equals
    its stored row (``known_sha``) is not decoded; ``draft`` None decodes exactly (as ``embed`` does)."""
    if read_error:
        return Decoded(state, error=read_error)
    digest = hashlib.sha256(data).hexdigest()
    if digest == known_sha:
        return Decoded(state, digest, unchanged=True, info=header_info(state, data))
    try:
        image, info = decode_photo(data, draft=draft, suffix=Path(state.path).suffix)
        pixels = resized_pixels(image, spec)
    except InputError as exc:
        cause = exc.__cause__ or exc
        return Decoded(state, digest, error=f"unreadable, truncated or not an image ({_named(str(cause), state.path)})")
    return Decoded(state, digest, pixels, info=info.with_mtime(state.mtime))


def decode_batch(batch: dict[str, np.ndarray], spec: ImageSpec, draft: tuple[int, int] | None) -> list[Decoded]:
    states = [FileState(str(p), int(s), float(m)) for p, s, m in zip(batch["path"], batch["size"], batch["mtime"])]
    return [
        decode_blob(st, bytes(d), str(e), str(k), spec, draft)
        for st, d, e, k in zip(states, batch["data"], batch["read_error"], batch["known"])
    ]


def embed_decoded(model: EmbeddingModel, decoded: list[Decoded], batch_size: int, normalize: bool = True) -> np.ndarray:
    """[N, D] embeddings of the decoded files (zeros for the others), ``batch_size`` images per encoder run."""
    vectors = np.zeros((len(decoded), model.manifest.embed_dim), np.float32)
    good = [i for i, d in enumerate(decoded) if d.pixels is not None]
    for start in range(0, len(good), batch_size):
        rows = good[start : start + batch_size]
        pixels = to_pixel_values([decoded[i].pixels for i in rows], model.manifest.image)
        out = model.encode_pixels(pixels)
        vectors[rows] = l2_normalize(out) if normalize else out
    return vectors


def embedding_columns(decoded: list[Decoded], vectors: np.ndarray) -> dict[str, np.ndarray]:
    """The embed result of a batch: path, sha256, embedding, error ("" when embedded)."""
    return {
        "path": np.array([d.state.path for d in decoded], dtype=object),
        "sha256": np.array([d.sha256 for d in decoded], dtype=object),
        "embedding": vectors,
        "error": np.array([d.error or "" for d in decoded], dtype=object),
    }


def status_columns(decoded: list[Decoded], known: np.ndarray) -> dict[str, np.ndarray]:
    """The index result of a batch: per file, its path, what happened (``STATUSES``) and the error."""
    status = [
        "unreadable" if d.error else "unchanged" if d.unchanged else "updated" if k else "added"
        for d, k in zip(decoded, known)
    ]
    return {
        "path": np.array([d.state.path for d in decoded], dtype=object),
        "status": np.array(status, dtype=object),
        "error": np.array([d.error or "" for d in decoded], dtype=object),
    }


class IndexWriter:
    """A worker's connection to the (PostgreSQL) index. Each batch is one transaction through ``Index.store``
    (upserts keyed by path, touches of unchanged files, removal of stale rows of files that became unreadable),
    so a batch retried after a crash rewrites the same rows and never duplicates one."""

    def __init__(self, db: str, model: EmbeddingModel):
        self.index = Index(db, model)  # refuses a database recorded with another model

    def write(self, decoded: list[Decoded], known: np.ndarray) -> None:
        """Encode the decoded files and store the batch, as the local ``Index.add`` does."""
        self.index.store(Batch(decoded, {d.state.path: (str(k) or None) for d, k in zip(decoded, known)}))

    def close(self) -> None:
        self.index.close()


class ParquetWriter:
    """Streams embedded files into one parquet file (``path``, ``sha256``, ``embedding`` fixed-size
    list<float32>), written to a temporary file and renamed at the end: a failed run leaves no partial output."""

    def __init__(self, output, dim: int, rows_per_group: int = 8192, metadata: dict | None = None):
        self.output, self.dim, self.rows_per_group, self.metadata = output, dim, rows_per_group, metadata
        self.pending: list[dict] = []
        self.count = 0

    def __enter__(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._atomic = atomic_file(self.output)
        tmp = self._atomic.__enter__()
        self.schema = pa.schema(
            [("path", pa.string()), ("sha256", pa.string()), ("embedding", pa.list_(pa.float32(), self.dim))],
            metadata=self.metadata,
        )
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
        table = pa.table(
            {
                "path": pa.array(np.concatenate([p["path"] for p in self.pending]).tolist(), pa.string()),
                "sha256": pa.array(np.concatenate([p["sha256"] for p in self.pending]).tolist(), pa.string()),
                "embedding": pa.FixedSizeListArray.from_arrays(vectors.reshape(-1), self.dim),
            },
            schema=self.schema,
        )
        self._writer.write_table(table)
        self.pending = []

    def __exit__(self, *exc_info):
        if exc_info[0] is None:
            self._flush()
        self._writer.close()
        return self._atomic.__exit__(*exc_info)


def _named(message: str, path: str) -> str:
    """The decoder's message about an in-memory stream, naming the file instead."""
    return re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>|<\d+ bytes>", repr(path), message)
