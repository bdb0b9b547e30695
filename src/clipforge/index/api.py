"""``Index``: a folder of images embedded into a database (SQLite file or PostgreSQL + pgvector) and searched
by text, by example image, or both. torch-free.

The index owns its algorithm; every engine calls the same public steps: ``plan(paths)`` (what to read, remove,
keep), ``store(batch)`` (one transaction of embedded files and removals) and ``query(...)`` (query embeddings
combined and searched). ``add`` is the local engine over them, the Ray engine (``distributed/``) runs the same
steps on workers, and the server embeds queries through its batchers and calls ``query``."""

from __future__ import annotations

import functools
import os
import shlex
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipforge._dblocation import redact, sqlite_file
from clipforge.errors import InputError
from clipforge.index.backends import open_backend
from clipforge.index.base import EmbeddingModel, Hit, IndexSummary, ModelRecord, ModelSwitched, Row, Stored, Touch
from clipforge.index.dedup import duplicate_groups
from clipforge.index.embeddings import EmbeddingsFile
from clipforge.index.filters import SearchFilter
from clipforge.index.ingest import Batch, Counts, Plan, ingest, make_plan, rate_progress
from clipforge.index.relevance import AUTO, Calibration, MinScore, Relevance, model_key, parse_min_score
from clipforge.index.walker import FileState, Walk, walk
from clipforge.models import open_model
from clipforge.runtime import scoring
from clipforge.runtime.images import ONE_IMAGE, to_pixel_values
from clipforge.runtime.labels import DEFAULT_TEMPLATE
from clipforge.runtime.model import ZeroShotModel
from clipforge.runtime.patches import with_max_patches
from clipforge.runtime.photo_info import PhotoInfo

ModelSource = EmbeddingModel | str | Path | None
Paths = Sequence[str | Path] | str | Path
BULK_MIN_ROWS = 50_000  # an import this large into an empty index takes the back-end's bulk path: docs/index.md
SWITCH_ROUNDS = 4  # a switch embeds files that other writers added to the active set meanwhile, this many times


def _following(method):
    """Run an ``Index`` search method against the active model: an index opened without a model follows a
    completed model switch (reloads the model, embeds the query again); one opened with a model refuses."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        for attempt in range(3):
            self._follow_switch(reload=True)
            try:
                return method(self, *args, **kwargs)
            except ModelSwitched:  # the flip committed between the check and the search
                if not self._follow or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    return run


class Index:
    """``Index(db, model=None)``: ``model`` is a loaded model (``ZeroShotModel``), a model folder / hub id, or
    None to load the model recorded in the database (and to follow a model switch: searches use the new model
    once the switch completes). A model other than the recorded one is refused, unless ``switch``: then
    ``add`` embeds the index's images (and those under its paths) into a new vector set while searches keep
    answering from the active one, and makes it active in one transaction when complete (kill-safe: a rerun
    resumes). docs/index.md, "Switching models"."""

    def __init__(
        self,
        db: str | Path,
        model: ModelSource = None,
        *,
        device: str = "cpu",
        threads: int | None = None,
        switch: bool = False,
        max_patches: int | None = None,
        **backend_options,
    ):
        file = sqlite_file(db)
        if model is None and file is not None and not file.exists():
            raise InputError(
                f"database {redact(db)} does not exist; index images into it first (clipforge index "
                f"PATH --db {redact(db)} -m MODEL)"
            )
        self.backend = open_backend(db, **backend_options)
        self._follow, self._device, self._threads = model is None, device, threads
        self._reload, self._started = threading.Lock(), False
        self._library = str(file.resolve()) if file is not None else self.backend.where
        self._relevance: Relevance | None = None  # the min_score="auto" cutoff, made for the model in use
        self._prepared = False  # a first search opens the back-end's files while its texts are embedded
        try:
            self.record = self.backend.model_record()
            self.model = _load_model(model, self.record, self.backend.where, device, threads, max_patches)
            if self.record is not None and self.record.same_model(ModelRecord.of(self.model)):
                given = isinstance(model, EmbeddingModel)
                _match_budget(self.model, self.record, max_patches, self.backend.where, given)
            self._mine = ModelRecord.of(self.model)
            self.switching = self.record is not None and not self.record.same_model(self._mine)
            if self.switching and not switch:
                raise InputError(self._mismatch())
            self.backend.expect = self.record.manifest_sha256 if self.record and not self.switching else None
        except BaseException:
            self.backend.close()
            raise

    @property
    def model_record(self) -> ModelRecord:
        """The record of this index's model (during a switch: the model being switched to)."""
        return self._mine

    def _mismatch(self, old: ModelRecord | None = None) -> str:
        """Why this index refuses the model it was opened with (``old``: the active record, default the one it
        was opened on), and the command that switches it."""
        old, new, where = old or self.record, self._mine, self.backend.where
        command = f"clipforge index --db {shlex.quote(where)} -m {shlex.quote(new.folder)}"
        if Path(old.folder) == Path(new.folder):
            return (
                f"the model folder {new.folder} changed since {where} was indexed with it (manifest "
                f"{old.manifest_sha256[:12]} then, {new.manifest_sha256[:12]} now: rebuilt in place?), so the stored "
                f"embeddings no longer match it; re-embed the index with the folder as it is now: {command}"
            )
        building = self.backend.next_record()
        if building is not None and building.same_model(new):
            done, total = self.backend.count(staged=True), self.backend.count()
            return (
                f"{where} answers with {old.describe()} until its switch to {new.describe()} completes ({done} of "
                f"about {total} images embedded); leave -m out to search now, or finish the switch: {command}"
            )
        return (
            f"{where} was indexed with {old.describe()}, not {new.describe()}; use that model (or leave -m out), "
            f"or switch the index to it (searches keep answering until its vectors are complete): {command}"
        )

    def _follow_switch(self, reload: bool) -> None:
        """Before a search: when the active model changed since this index was opened (a switch completed),
        load it (``reload`` and opened without a model) or raise ``ModelSwitched``."""
        if self.switching:
            raise InputError(
                f"this Index is switching {self.backend.where} to {self._mine.describe()}; search through "
                "another Index (opened without switch=True) until its add() completes"
            )
        active = self.backend.model_record()
        if active is None:
            return
        if self.record is None:  # opened on a fresh database; another process recorded a model since
            if not active.same_model(self._mine):
                raise InputError(self._mismatch(active))
            self.record, self.backend.expect = active, active.manifest_sha256
            return
        if active.same_model(self.record):
            return
        if not (reload and self._follow):
            raise ModelSwitched(
                f"{self.backend.where} switched from {self.record.describe()} to {active.describe()} since it "
                "was opened; reopen it (restart clipforge serve) to search with the new model"
            )
        with self._reload:
            if not active.same_model(self.record):
                self.model = _load_model(None, active, self.backend.where, self._device, self._threads)
                _match_budget(self.model, active, None, self.backend.where, given=False)  # its recorded budget
                self._mine = ModelRecord.of(self.model)
                if not active.same_model(self._mine):  # the new model's folder rebuilt since
                    raise InputError(self._mismatch(active))
                self.record, self.backend.expect = active, active.manifest_sha256

    # --- writing ------------------------------------------------------------------------------------------
    def _ensure_record(self) -> None:
        if self.switching:
            active = self.backend.model_record()
            if active.same_model(self._mine):  # another process completed this switch: index as usual
                self.record, self.switching = active, False
                self.backend.expect = active.manifest_sha256
            elif not self._started:  # begin, or resume, the new vector set
                self.backend.start_next(self._mine)
                self._started = True
            return
        if self.record is None:
            self.backend.set_model_record(self._mine)
            self.record = self.backend.model_record()
            if not self.record.same_model(self._mine):  # another process recorded a different model first
                raise InputError(
                    f"{self.backend.where} was just indexed with {self.record.describe()} by "
                    f"another process, not {self._mine.describe()}"
                )
            self.backend.expect = self.record.manifest_sha256

    def plan(self, paths: Paths) -> Plan:
        """What indexing ``paths`` (files or folders, recursively) takes: the new and changed files to read,
        the rows of files deleted under them to remove, how many are unchanged. Makes the database ready to
        write and records this index's model in it (so workers that open it later find the record)."""
        found = walk([paths] if isinstance(paths, (str, Path)) else paths)
        self.backend.for_writing()
        self._ensure_record()
        if self.switching:
            found = self._with_active_files(found)
        return make_plan(found, self.backend.files(staged=self.switching))

    def _with_active_files(self, found: Walk) -> Walk:
        """A switch re-embeds every file of the active set too, not only those under the given paths (a file
        deleted since is left out: the switch drops its row)."""
        listed = {f.path for f in found.files}
        extra = [p for p in self.backend.files() if p not in listed and not found.covers(p)]
        return Walk(found.roots, [*found.files, *_stat(extra)], found.unreadable)

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
        deleted = self.backend.apply(rows, touches, [*stale, *batch.removals], staged=self.switching)
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

        def embed(todo: list) -> None:
            ingest(
                self.store,
                self.model.manifest.image,
                todo,
                counts,
                exact=exact_decode,
                batch_size=batch_size,
                threads=threads,
                show=not quiet,
            )

        embed(plan.read)
        switched = self._finish_switch(counts, embed) if self.switching else None
        self.backend.refresh_search()
        summary = counts.summary(round(time.perf_counter() - start, 3))
        summary.switched = switched
        return summary

    def _finish_switch(self, counts: Counts, embed) -> str:
        """Make the new vector set active (one transaction); files the active set gained meanwhile (another
        writer) are embedded first. Files that vanished or could not be read are left out. Returns "OLD -> NEW"."""
        old, gone = self.record, {p for p, _ in counts.unreadable}
        for _ in range(SWITCH_ROUNDS):
            missing = self.backend.switch(gone)
            if not missing:
                break
            present = _stat(missing)
            gone |= set(missing) - {f.path for f in present}
            embed(make_plan(Walk([], present, []), self.backend.files(staged=True)).read)
            gone |= {p for p, _ in counts.unreadable}
        else:
            raise InputError(
                f"{self.backend.where} kept gaining images during the switch to {self._mine.describe()}; "
                "run the same command again once the other indexing runs are done (it resumes)"
            )
        active = self.backend.model_record()
        if not active.same_model(self._mine):  # another process dropped this set (a switch to a third model)
            raise InputError(
                f"the switch of {self.backend.where} to {self._mine.describe()} was replaced by another process's "
                f"switch; the index holds {active.describe()}"
            )
        self.record, self.switching = active, False
        self.backend.expect = self.record.manifest_sha256
        return f"{old.describe()} -> {self.record.describe()}"

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
        self._not_switching("importing embeddings")
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
        self._not_switching("upsert")
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
        self._not_switching("remove")
        given = [paths] if isinstance(paths, (str, Path)) else paths
        targets = [str(Path(p).expanduser().resolve()) for p in given]
        stored = self.backend.files()
        doomed = [p for p in stored if any(p == t or p.startswith(t.rstrip("/") + "/") for t in targets)]
        return self.backend.apply(removals=doomed) if doomed else 0

    def _not_switching(self, what: str) -> None:
        if self.switching:
            raise InputError(
                f"{what} writes the active vector set of {self.backend.where}, not a switch to "
                f"{self._mine.describe()}; open the index without switch=True (with its model), or switch with add()"
            )

    # --- reading ------------------------------------------------------------------------------------------
    @_following
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
        texts, negatives = _texts(text), _texts(negative)
        vectors = self._embed_meanwhile(texts + negatives, exact)
        return self.query(
            text=vectors[: len(texts)],
            image=self._embed_images(image),
            negative=vectors[len(texts) :],
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
        least ``min_score`` among the images ``filters`` lets through (``exact``: as in ``search``). ``"auto"``:
        the learnt cutoff (``cutoff``); a query with negatives is judged on its texts alone, then kept uncut."""
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
        self._follow_switch(reload=False)  # the vector was embedded with this index's model
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

        key = model_key(self.model.folder, self._mine.manifest_sha256)
        if self._relevance is None or self._relevance.model_key != key:  # first use, or a switch reloaded the model
            self._relevance = Relevance(model_key=key, library=self._library)
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

    def _embed_meanwhile(self, texts: list[str], exact: bool) -> list[np.ndarray]:
        """The embeddings of ``texts``; on a first search, computed in another thread while this one opens what
        the search reads (loading the text encoder and opening the sidecar overlap: a fresh
        ``clipforge search`` answers sooner; onnxruntime releases the GIL while it loads and runs)."""
        if not texts:
            return []
        if self._prepared:
            return list(self.model.embed_texts(texts))
        self._prepared = True
        return list(meanwhile(lambda: self.model.embed_texts(texts), lambda: self.backend.prepare(exact)))

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
        out = {**self.backend.info(), "images": self.backend.count(), "model": record}
        building = self.backend.next_record()
        if building is not None:  # an unfinished switch
            out["switch"] = {"model": building.__dict__, "images": self.backend.count(staged=True)}
        return out

    def problem(self) -> str | None:
        """Why the database cannot serve searches now (e.g. its file was deleted while open), or None."""
        return self.backend.problem()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _match_budget(model, record: ModelRecord | None, max_patches: int | None, where: str, given: bool) -> None:
    """A NaFlex index embeds every image at the patch budget its model record holds: a model loaded here without
    ``max_patches`` takes it; another budget (asked for, or the budget a ``given`` loaded model runs at) is
    refused in one line."""
    recorded = (record.preprocessing.get("max_patches") or None) if record else None
    if not recorded or not model.manifest.image.naflex:
        return
    asked = model.manifest.image.max_patches if given else max_patches
    if asked is not None and asked != recorded:
        raise InputError(
            f"{where} was indexed at max_patches={recorded} (patches per image), not {asked}; use "
            f"max_patches={recorded} or index into another database"
        )
    if not given:
        model.manifest.image = with_max_patches(model.manifest.image, recorded)


def _stat(paths: Sequence[str]) -> list[FileState]:
    """The files among ``paths`` that exist now, with their size and mtime."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        out.append(FileState(path, st.st_size, st.st_mtime))
    return out


def _load_model(
    model: ModelSource,
    record: ModelRecord | None,
    where: str,
    device: str,
    threads: int | None,
    max_patches: int | None = None,
) -> EmbeddingModel:
    if isinstance(model, (str, Path)):  # lazy: a search opens only the text encoder (cold start, memory)
        return open_model(model, device=device, threads=threads, lazy=True, max_patches=max_patches)
    if model is not None:
        if max_patches is not None:
            raise InputError("max_patches is set when loading a model (open_model(..., max_patches=)); leave it out")
        return model
    if record is None:
        raise InputError(f"{where} records no model yet; pass one (-m MODEL / model=...) to index with")
    if not (Path(record.folder) / "manifest.json").is_file():
        raise InputError(
            f"{where} was indexed with {record.describe()} from {record.folder}, which no longer "
            "exists; pass that model with -m"
        )
    return ZeroShotModel.from_onnx(record.folder, device=device, threads=threads, lazy=True, max_patches=max_patches)


def _texts(text) -> list[str]:
    """Query text(s) as a list; empty or non-string texts refused."""
    texts = [text] if isinstance(text, str) else list(text or [])
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise InputError("search texts must be non-empty strings")
    return texts


def meanwhile(work, other):
    """``work()`` in a new thread while ``other()`` runs in this one; ``work``'s result, or the first error
    (``other``'s, then ``work``'s) once both have finished."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # noqa: BLE001  re-raised in the calling thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="clipforge-embed", daemon=True)
    thread.start()
    try:
        other()
    finally:
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
