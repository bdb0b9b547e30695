"""``Index``: a folder of images embedded into a database (SQLite file or PostgreSQL + pgvector) and searched
by text, by example image, or both. torch-free."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipforge._dblocation import is_postgres, redact
from clipforge.errors import InputError
from clipforge.index.base import Backend, Hit, IndexSummary, ModelRecord, Row, Stored
from clipforge.index.dedup import duplicate_groups
from clipforge.index.ingest import Counts, ingest, plan
from clipforge.index.walker import walk


def open_backend(db: str | Path, **options) -> Backend:
    """``postgresql://...`` -> PostgreSQL + pgvector; anything else is a SQLite file (created if missing)."""
    from clipforge.index.postgres import PostgresBackend, is_postgres_url

    if is_postgres_url(db):
        return PostgresBackend(str(db), **options)
    if isinstance(db, str) and "://" in db:
        raise InputError(f"database {redact(db)!r} is neither a file path nor a postgresql:// URL")
    from clipforge.index.sqlite import SqliteBackend

    return SqliteBackend(db)


class Index:
    """``Index(db, model=None)``: ``model`` is a ``ZeroShotModel``, a model folder/hub id, or None to load the
    model recorded in the database. A model other than the recorded one is refused."""

    def __init__(
        self, db: str | Path, model=None, *, device: str = "cpu", threads: int | None = None, **backend_options
    ):
        if model is None and not is_postgres(db) and "://" not in str(db) and not Path(db).expanduser().exists():
            raise InputError(
                f"database {redact(db)} does not exist; index images into it first (clipforge index "
                f"PATH --db {redact(db)} -m MODEL)"
            )
        self.backend = open_backend(db, **backend_options)
        try:
            self.record = self.backend.model_record()
            self.model = _load_model(model, self.record, self.backend.where, device, threads)
            self._mine = ModelRecord.of(self.model)
            if self.record is not None and not self.record.same_model(self._mine):
                raise InputError(
                    f"{self.backend.where} was indexed with {self.record.describe()}, not {self._mine.describe()}; "
                    "use that model (or leave -m out) or index into another database"
                )
        except BaseException:
            self.backend.close()
            raise

    # --- writing ------------------------------------------------------------------------------------------
    def _ensure_record(self) -> None:
        if self.record is None:
            self.backend.set_model_record(self._mine)
            self.record = self.backend.model_record()
            if not self.record.same_model(self._mine):  # another process recorded a different model first
                raise InputError(
                    f"{self.backend.where} was just indexed with {self.record.describe()} by "
                    f"another process, not {self._mine.describe()}"
                )

    def add(
        self,
        paths: Sequence[str | Path] | str | Path,
        *,
        exact_decode: bool = False,
        quiet: bool = True,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> IndexSummary:
        """Embed new and changed images under ``paths`` (files or folders, recursively) and drop the rows of
        files deleted under them. Unreadable files are reported in the summary, never fatal."""
        start = time.perf_counter()
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        found = walk([paths] if isinstance(paths, (str, Path)) else paths)
        self.backend.for_writing()
        self._ensure_record()
        stored = self.backend.files()
        counts = Counts(unreadable=list(found.unreadable))
        present = {f.path for f in found.files}
        gone = [p for p in stored if p not in present and found.covers(p)]
        counts.removed = self.backend.apply(removals=gone) if gone else 0
        todo, counts.unchanged = plan(found.files, stored)
        ingest(
            self.backend,
            self.model,
            todo,
            counts,
            exact=exact_decode,
            batch_size=batch_size,
            threads=threads,
            show=not quiet,
        )
        return IndexSummary(
            counts.added,
            counts.updated,
            counts.removed,
            counts.unreadable,
            round(time.perf_counter() - start, 3),
            counts.unchanged,
        )

    def upsert(self, rows: Sequence[Row | tuple]) -> None:
        """Store precomputed rows ``(path, size, mtime, sha256, embedding float32[D])`` in one transaction
        (insert or replace by path; idempotent). Embeddings are L2-normalised here."""
        from clipforge.runtime.scoring import l2_normalize

        self._ensure_record()
        dim, clean = self.record.embed_dim, []
        for row in rows:
            path, size, mtime, sha, embedding = tuple(row.__dict__.values()) if isinstance(row, Row) else row
            vector = np.asarray(embedding, np.float32).reshape(-1)
            if vector.shape[0] != dim:
                raise InputError(f"embedding of {path} has {vector.shape[0]} values; the index holds dim {dim}")
            clean.append(Row(str(path), int(size), float(mtime), str(sha), l2_normalize(vector)))
        if clean:
            self.backend.apply(clean)

    def remove(self, paths: Sequence[str | Path] | str | Path) -> int:
        """Delete the rows of these files (or of every file under these folders); returns how many."""
        given = [paths] if isinstance(paths, (str, Path)) else paths
        targets = [str(Path(p).expanduser().resolve()) for p in given]
        stored = self.backend.files()
        doomed = [p for p in stored if any(p == t or p.startswith(t.rstrip("/") + "/") for t in targets)]
        return self.backend.apply(removals=doomed) if doomed else 0

    # --- reading ------------------------------------------------------------------------------------------
    def query_vector(self, text=None, image=None, negative=None) -> np.ndarray:
        """The normalised query: mean of the positive embeddings (texts and images) minus the mean of the
        negative ones."""
        from clipforge.runtime.scoring import l2_normalize

        positives = [*self._embed_texts(text), *self._embed_images(image)]
        if not positives:
            raise InputError(
                "search needs a text or an image query (or both); pass a query text or --image "
                "(Python: text=... / image=...)"
            )
        query = np.mean(positives, axis=0)
        negatives = self._embed_texts(negative)
        if len(negatives):
            query = query - np.mean(negatives, axis=0)
        return l2_normalize(query.astype(np.float32))

    def _embed_texts(self, text) -> list[np.ndarray]:
        texts = [text] if isinstance(text, str) else list(text or [])
        if any(not isinstance(t, str) or not t.strip() for t in texts):
            raise InputError("search texts must be non-empty strings")
        return list(self.model.embed_texts(texts)) if texts else []

    def _embed_images(self, image) -> list[np.ndarray]:
        from clipforge.runtime.images import _SINGLE

        images = [image] if isinstance(image, _SINGLE) else list(image or [])
        return list(self.model.embed_images(images)) if images else []

    def search(self, text=None, image=None, negative=None, k: int = 20, min_score: float | None = None) -> list[Hit]:
        """The ``k`` indexed images most similar to the query, best first; ``min_score`` drops weaker hits."""
        return self.search_vector(self.query_vector(text, image, negative), k, min_score)

    def search_vector(self, vector, k: int = 20, min_score: float | None = None) -> list[Hit]:
        """Search with a precomputed query embedding [D] (normalised here), e.g. from a batching server."""
        from clipforge.runtime.scoring import l2_normalize

        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        vector = np.asarray(vector, np.float32).reshape(-1)
        if self.record is not None and vector.shape[0] != self.record.embed_dim:
            raise InputError(f"query has {vector.shape[0]} values; the index holds dim {self.record.embed_dim}")
        hits = self.backend.search(l2_normalize(vector), int(k))
        return [h for h in hits if min_score is None or h.score >= min_score]

    def path_of(self, image_id: int) -> str | None:
        return self.backend.path_of(image_id)

    def file_of(self, image_id: int) -> tuple[str, Stored] | None:
        """The path of image ``image_id`` and the size, mtime and sha256 it was indexed with."""
        return self.backend.file_of(image_id)

    def classify(self, labels: Sequence[str], template=None, top_k: int = 1) -> list[dict[str, Any]]:
        """Zero-shot labels for every indexed image from the stored vectors (nothing is re-encoded):
        ``[{"id", "path", "label", "score", "predictions": [{"label", "score"}, ...]}]``."""
        from clipforge.runtime.labels import DEFAULT_TEMPLATE
        from clipforge.runtime.scoring import top_k as best

        text = self.model.label_embeddings(labels, template or DEFAULT_TEMPLATE)
        ids, paths, matrix = self.backend.vectors()
        if not len(ids):
            return []
        probs = self.model.scores(self.model.logits(matrix, text))
        out = []
        for image_id, path, row in zip(ids, paths, probs):
            predictions = best(row, list(labels), top_k)
            out.append({"id": int(image_id), "path": path, **predictions[0], "predictions": predictions})
        return out

    def duplicates(self, threshold: float = 0.95) -> list[list[Hit]]:
        """Groups of near-duplicate images (cosine >= ``threshold``, chained), largest first."""
        ids, paths, matrix = self.backend.vectors()
        return duplicate_groups(ids, paths, matrix, threshold)

    def stats(self) -> dict[str, Any]:
        record = self.record.__dict__ if self.record else None
        return {**self.backend.info(), "images": self.backend.count(), "model": record}

    def problem(self) -> str | None:
        """Why the database cannot serve searches now (e.g. its file was deleted while open), or None."""
        return self.backend.problem()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _load_model(model, record: ModelRecord | None, where: str, device: str, threads: int | None):
    from clipforge.models import open_model
    from clipforge.runtime.model import ZeroShotModel

    if isinstance(model, ZeroShotModel):
        return model
    if model is not None:
        return open_model(model, device=device, threads=threads)
    if record is None:
        raise InputError(f"{where} records no model yet; pass one (-m MODEL / model=...) to index with")
    if not (Path(record.folder) / "manifest.json").is_file():
        raise InputError(
            f"{where} was indexed with {record.describe()} from {record.folder}, which no longer "
            "exists; pass that model with -m"
        )
    return ZeroShotModel.from_onnx(record.folder, device=device, threads=threads)
