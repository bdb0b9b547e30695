"""``Index``: a folder of images embedded into a database (SQLite file or PostgreSQL + pgvector) and searched
by text, by example image, or both. torch-free.

The index owns its algorithm; every engine calls the same public steps: ``plan(paths)`` (what to read, remove,
keep), ``store(batch)`` (one transaction of embedded files and removals) and ``query(...)`` (query embeddings
combined and searched). ``add`` is the local engine over them, the Ray engine (``distributed/``) runs the same
steps on workers, and the server embeds queries through its batchers and calls ``query``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipforge._dblocation import redact, sqlite_file
from clipforge.errors import InputError
from clipforge.index.backends import open_backend
from clipforge.index.base import EmbeddingModel, Hit, IndexSummary, ModelRecord, Row, Stored, Touch
from clipforge.index.dedup import duplicate_groups
from clipforge.index.embeddings import EmbeddingsFile
from clipforge.index.filters import SearchFilter
from clipforge.index.ingest import Batch, Counts, Plan, ingest, make_plan, rate_progress
from clipforge.index.relevance import AUTO, Calibration, MinScore, Relevance, model_key, parse_min_score
from clipforge.index.walker import walk
from clipforge.models import open_model
from clipforge.runtime import scoring
from clipforge.runtime.images import ONE_IMAGE, to_pixel_values
from clipforge.runtime.labels import DEFAULT_TEMPLATE
from clipforge.runtime.model import ZeroShotModel
from clipforge.runtime.photo_info import PhotoInfo

ModelSource = EmbeddingModel | str | Path | None
Paths = Sequence[str | Path] | str | Path
BULK_MIN_ROWS = 50_000  # an import this large into an empty index takes the back-end's bulk path: docs/index.md


class Index:
    """``Index(db, model=None)``: ``model`` is a loaded model (``ZeroShotModel``), a model folder / hub id, or
    None to load the model recorded in the database. A model other than the recorded one is refused."""

    def __init__(
        self,
        db: str | Path,
        model: ModelSource = None,
        *,
        device: str = "cpu",
        threads: int | None = None,
        **backend_options,
    ):
        file = sqlite_file(db)
        if model is None and file is not None and not file.exists():
            raise InputError(
                f"database {redact(db)} does not exist; index images into it first (clipforge index "
                f"PATH --db {redact(db)} -m MODEL)"
            )
        self.backend = open_backend(db, **backend_options)
        try:
            self.record = self.backend.model_record()
            self.model = _load_model(model, self.record, self.backend.where, device, threads)
            self._mine = ModelRecord.of(self.model)
            key = model_key(self.model.folder, self._mine.manifest_sha256)
            library = str(file.resolve()) if file is not None else self.backend.where
            self._relevance = Relevance(model_key=key, library=library)
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

    def plan(self, paths: Paths) -> Plan:
        """What indexing ``paths`` (files or folders, recursively) takes: the new and changed files to read,
        the rows of files deleted under them to remove, how many are unchanged. Makes the database ready to
        write and records this index's model in it (so workers that open it later find the record)."""
        found = walk([paths] if isinstance(paths, (str, Path)) else paths)
        self.backend.for_writing()
        self._ensure_record()
        return make_plan(found, self.backend.files())

    def store(self, batch: Batch) -> Counts:
        """One transaction: embed the batch's decoded files with this index's model and insert or replace
        their rows, update the stats of files whose content is unchanged, delete the rows of stored files that
        became unreadable (their embedding is stale) and of ``batch.removals``. Returns what it did; a batch
        stored again (a retry) writes the same rows."""
        self._ensure_record()
        good = [d for d in batch.decoded if d.pixels is not None]
        vectors = self._encode([d.pixels for d in good]) if good else []
        rows = [Row(d.state.path, d.state.size, d.state.mtime, d.sha256, v, d.info) for d, v in zip(good, vectors)]
        touches = [Touch(d.state.path, d.state.size, d.state.mtime, d.info) for d in batch.decoded if d.unchanged]
        bad = [d for d in batch.decoded if d.error]
        stale = [d.state.path for d in bad if batch.known.get(d.state.path)]
        deleted = self.backend.apply(rows, touches, [*stale, *batch.removals])
        return Counts(
            added=sum(batch.known.get(r.path) is None for r in rows),
            updated=sum(batch.known.get(r.path) is not None for r in rows),
            unchanged=len(touches),
            removed=max(0, deleted - len(stale)),  # what was deleted besides the stale rows: the removals
            unreadable=[(d.state.path, d.error) for d in bad],
        )

    def _encode(self, pixels: list[np.ndarray]) -> np.ndarray:
        return scoring.l2_normalize(self.model.encode_pixels(to_pixel_values(pixels, self.model.manifest.image)))

    def add(
        self,
        paths: Paths,
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
        plan = self.plan(paths)
        counts = Counts(unchanged=plan.unchanged, unreadable=list(plan.unreadable))
        if plan.remove:
            counts.add(self.store(Batch(removals=plan.remove)))
        ingest(
            self.store,
            self.model.manifest.image,
            plan.read,
            counts,
            exact=exact_decode,
            batch_size=batch_size,
            threads=threads,
            show=not quiet,
        )
        self.backend.refresh_search()
        return counts.summary(round(time.perf_counter() - start, 3))

    def add_embeddings(
        self, path: str | Path, *, batch_size: int = 10_000, quiet: bool = True, bulk: bool | None = None
    ) -> IndexSummary:
        """Import precomputed embeddings (the parquet ``clipforge embed`` writes, locally or on Ray) without
        reading the image files; the file's dimension and model must be this index's. Rows are stored
        ``batch_size`` at a time (each one transaction). ``bulk``: load through the back-end's bulk path
        (PostgreSQL: COPY, the HNSW index built once at the end); by default when the index is empty and the
        file holds at least ``BULK_MIN_ROWS`` rows. Sizes, mtimes and sha256: ``clipforge.index.embeddings``."""
        start = time.perf_counter()
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        file = EmbeddingsFile.open(path)
        self.backend.for_writing()
        self._ensure_record()
        file.check(self.record, self.backend.where)
        known = self.backend.files() if self.backend.count() else {}
        if bulk is None:
            bulk = not known and file.rows >= BULK_MIN_ROWS
        counts = Counts()
        with rate_progress(file.rows, not quiet, "importing") as advance:

            def batches():
                for rows in file.batches(batch_size):
                    added = sum(r.path not in known for r in rows)
                    counts.add(Counts(added=added, updated=len(rows) - added))
                    yield rows
                    advance(len(rows))

            if bulk:
                self.backend.bulk_load(batches())
            else:
                for rows in batches():
                    self.backend.apply(rows)
        self.backend.refresh_search()
        return counts.summary(round(time.perf_counter() - start, 3))

    def upsert(self, rows: Sequence[Row | tuple]) -> None:
        """Store precomputed rows ``(path, size, mtime, sha256, embedding float32[D])`` (or ``Row``s, whose photo
        ``info`` is kept) in one transaction (insert or replace by path; idempotent). Embeddings are L2-normalised
        here; rows without photo metadata get it at the next ``add`` over their folders."""
        self._ensure_record()
        dim, clean = self.record.embed_dim, []
        for row in rows:
            path, size, mtime, sha, embedding = (
                (row.path, row.size, row.mtime, row.sha256, row.embedding) if isinstance(row, Row) else row
            )
            vector = np.asarray(embedding, np.float32).reshape(-1)
            if vector.shape[0] != dim:
                raise InputError(f"embedding of {path} has {vector.shape[0]} values; the index holds dim {dim}")
            info = row.info if isinstance(row, Row) else None
            clean.append(Row(str(path), int(size), float(mtime), str(sha), scoring.l2_normalize(vector), info))
        if clean:
            self.backend.apply(clean)

    def remove(self, paths: Paths) -> int:
        """Delete the rows of these files (or of every file under these folders); returns how many."""
        given = [paths] if isinstance(paths, (str, Path)) else paths
        targets = [str(Path(p).expanduser().resolve()) for p in given]
        stored = self.backend.files()
        doomed = [p for p in stored if any(p == t or p.startswith(t.rstrip("/") + "/") for t in targets)]
        return self.backend.apply(removals=doomed) if doomed else 0

    # --- reading ------------------------------------------------------------------------------------------
    def search(
        self,
        text=None,
        image=None,
        negative=None,
        k: int = 20,
        min_score: MinScore = None,
        filters: SearchFilter | None = None,
        exact: bool = False,
    ) -> list[Hit]:
        """The ``k`` indexed images most similar to the query, best first: ``text`` (one or more strings) and
        ``image`` (one or more images: paths, bytes, PIL images) are embedded with this index's model and
        averaged, ``negative`` texts subtracted; ``min_score`` drops weaker hits (``"auto"``: the cutoff this
        library and model call a match, ``relevance()``; no hit when nothing stands out); ``filters`` (a
        ``SearchFilter``: date taken, folder, camera, place; sort by date) restricts and orders them.
        ``exact``: compare with every stored vector instead of the approximate index (slower on large
        indexes; the same scores)."""
        return self.query(
            text=self._embed_texts(text),
            image=self._embed_images(image),
            negative=self._embed_texts(negative),
            k=k,
            min_score=min_score,
            filters=filters,
            exact=exact,
        )

    def query(
        self,
        *,
        text: Sequence[np.ndarray] = (),
        image: Sequence[np.ndarray] = (),
        negative: Sequence[np.ndarray] = (),
        k: int = 20,
        min_score: MinScore = None,
        filters: SearchFilter | None = None,
        exact: bool = False,
    ) -> list[Hit]:
        """Search with the embeddings of a query's parts: the mean of the positive ones (``text`` and
        ``image``) minus the mean of the ``negative`` ones, normalised; the ``k`` best hits with a score of at
        least ``min_score`` among the images ``filters`` lets through (``exact``: as in ``search``)."""
        positives = [*text, *image]
        if not positives:
            raise InputError(
                "search needs a text or an image query (or both); pass a query text or --image "
                "(Python: text=... / image=...)"
            )
        vector = np.mean(positives, axis=0)
        cutoff = self.cutoff(min_score, image=image)
        if len(negative):
            vector = vector - np.mean(negative, axis=0)
            if parse_min_score(min_score) == AUTO and cutoff is not None:  # judged on its texts alone
                found = self.search_vector(np.mean(text, axis=0), 1, cutoff, filters, exact)
                return self.search_vector(vector, k, None, filters, exact) if found else []
        return self.search_vector(vector, k, cutoff, filters, exact)

    def search_vector(
        self,
        vector,
        k: int = 20,
        min_score: MinScore = None,
        filters: SearchFilter | None = None,
        exact: bool = False,
    ) -> list[Hit]:
        """Search with a precomputed query embedding [D] (normalised here), e.g. from a batching server.
        ``filters``: only the rows it lets through are searched; ``sort="date"`` shows the ``k`` best newest
        first (undated rows last). ``exact``: as in ``search``."""
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        vector = np.asarray(vector, np.float32).reshape(-1)
        if self.record is not None and vector.shape[0] != self.record.embed_dim:
            raise InputError(f"query has {vector.shape[0]} values; the index holds dim {self.record.embed_dim}")
        query, cutoff = scoring.l2_normalize(vector), self.cutoff(min_score)
        if filters is not None and filters.narrows:
            hits = self.backend.search_filtered(query, int(k), filters, exact=exact)
        else:
            hits = self.backend.search(query, int(k), exact=exact)
        hits = [h for h in hits if cutoff is None or h.score >= cutoff]
        return self._by_date(hits) if filters is not None and filters.sort == "date" else hits

    def relevance(self) -> Calibration:
        """The cutoff ``min_score="auto"`` applies: learnt from the library's best scores for a generic vocabulary
        (``clipforge.index.relevance``), computed on first use and again when the image count changes."""

        def best_score(vector: np.ndarray) -> float | None:
            top = self.backend.search(vector, 1)
            return top[0].score if top else None

        return self._relevance.calibration(self.model.embed_texts, best_score, self.backend.count())

    def cutoff(self, min_score: MinScore, *, image: Sequence[np.ndarray] = ()) -> float | None:
        """The score ``min_score`` judges a query by: as given, or for ``"auto"`` the library's learnt cutoff
        (None for a query with an example image: ``auto`` keeps its hits)."""
        value = parse_min_score(min_score)
        return (None if len(image) else self.relevance().cutoff) if value == AUTO else value

    def _by_date(self, hits: list[Hit]) -> list[Hit]:
        """``hits`` newest first (by date taken; equal dates by score), hits without a date last."""
        info = self.backend.metadata([h.id for h in hits])
        dated = sorted((h for h in hits if h.id in info), key=lambda h: (info[h.id].taken, h.score), reverse=True)
        return dated + [h for h in hits if h.id not in info]

    def _embed_texts(self, text) -> list[np.ndarray]:
        texts = [text] if isinstance(text, str) else list(text or [])
        if any(not isinstance(t, str) or not t.strip() for t in texts):
            raise InputError("search texts must be non-empty strings")
        return list(self.model.embed_texts(texts)) if texts else []

    def _embed_images(self, image) -> list[np.ndarray]:
        images = [image] if isinstance(image, ONE_IMAGE) else list(image or [])
        return list(self.model.embed_images(images)) if images else []

    def path_of(self, image_id: int) -> str | None:
        return self.backend.path_of(image_id)

    def file_of(self, image_id: int) -> tuple[str, Stored] | None:
        """The path of image ``image_id`` and the size, mtime and sha256 it was indexed with."""
        return self.backend.file_of(image_id)

    def metadata(self, ids: Sequence[int]) -> dict[int, PhotoInfo]:
        """Image id -> its photo metadata (date taken, place, camera, size, orientation) for the ``ids`` that
        have it (rows indexed before schema version 2 get it at the next ``add``)."""
        return self.backend.metadata(ids)

    def count(self) -> int:
        """How many images the index holds."""
        return self.backend.count()

    def classify(self, labels: Sequence[str], template=None, top_k: int = 1) -> list[dict[str, Any]]:
        """Zero-shot labels for every indexed image from the stored vectors (nothing is re-encoded):
        ``[{"id", "path", "label", "score", "predictions": [{"label", "score"}, ...]}]``."""
        text = self.model.label_embeddings(labels, template or DEFAULT_TEMPLATE)
        ids, paths, matrix = self.backend.vectors()
        if not len(ids):
            return []
        probs = self.model.scores(self.model.logits(matrix, text))
        out = []
        for image_id, path, row in zip(ids, paths, probs):
            predictions = scoring.top_k(row, list(labels), top_k)
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


def _load_model(
    model: ModelSource, record: ModelRecord | None, where: str, device: str, threads: int | None
) -> EmbeddingModel:
    if isinstance(model, (str, Path)):  # lazy: a search opens only the text encoder (cold start, memory)
        return open_model(model, device=device, threads=threads, lazy=True)
    if model is not None:
        return model
    if record is None:
        raise InputError(f"{where} records no model yet; pass one (-m MODEL / model=...) to index with")
    if not (Path(record.folder) / "manifest.json").is_file():
        raise InputError(
            f"{where} was indexed with {record.describe()} from {record.folder}, which no longer "
            "exists; pass that model with -m"
        )
    return ZeroShotModel.from_onnx(record.folder, device=device, threads=threads, lazy=True)
