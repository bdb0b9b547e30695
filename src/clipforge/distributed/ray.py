"""The Ray engine: embed or index many image files on a Ray cluster (or a local Ray instance) with Ray Data.

Files are listed on the driver; a Ray Data read stage (tasks) loads their bytes; ``map_batches`` runs
:class:`EmbedActor`, a callable class that loads one ``ZeroShotModel`` per worker from the exported folder
(shipped as a path: no re-export per worker), with onnxruntime's intra-op threads set to the worker's CPU
share, and calls the engine-independent steps in :mod:`clipforge.distributed.records`. For ``embed`` the
embeddings stream back to the driver, which writes the parquet file; for ``index`` every worker stores its
batches into the PostgreSQL index itself and only a status per file comes back. The driver shows progress.

A worker that dies is restarted and its batch retried (``max_restarts``/``max_task_retries``); index writes are
one transaction per batch keyed by path, so a retried batch never duplicates a row, and a batch's results reach
the driver once. This is the only module that imports Ray.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipforge import _faults
from clipforge._dblocation import is_postgres
from clipforge.distributed import records
from clipforge.errors import InputError, require
from clipforge.index import Batch, Index, IndexSummary, ModelRecord
from clipforge.index.embeddings import model_metadata
from clipforge.progress import counter
from clipforge.runtime.images import draft_request
from clipforge.runtime.model import ZeroShotModel
from clipforge.specs import Manifest

MAX_RESTARTS = 4  # a worker process that dies is restarted this many times ...
MAX_TASK_RETRIES = 4  # ... and the batch it was running is retried on the restarted worker
CALLS_PER_WORKER = 2  # batches in flight in one worker: one decodes while the other encodes
MAX_BLOCKS = 2000  # the file list is cut into at most this many blocks (read tasks) of whole batches


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run: ``address`` of a running cluster (``None``: ``$RAY_ADDRESS`` or a local
    instance), ``workers`` actors (``None``: as many as the cluster's CPUs allow), each with ``cpus_per_worker``
    CPUs (= onnxruntime's intra-op threads), fed ``batch_size`` images per call."""

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: int = 1
    batch_size: int = 32

    def __post_init__(self):
        for name in ("workers", "cpus_per_worker", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")


@dataclass(frozen=True)
class Job:
    """What every worker does: embed with the model in ``folder`` (``draft``: JPEG draft decode size, None =
    exact) and either return the embeddings (``db`` None) or store them into the index at ``db``."""

    folder: str
    threads: int
    batch_size: int
    draft: tuple[int, int] | None = None
    normalize: bool = True
    db: str | None = None
    backend: str = "auto"  # inference backend of every worker (onnxruntime | openvino | auto)
    precision: str | None = None  # fp32 | bf16 (OpenVINO); None: what the build recorded


@dataclass
class RunStats:
    """What came back: files by status, unreadable (path, reason), wall time, the pool it ran on."""

    counts: dict[str, int] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    first_result_seconds: float = 0.0  # start-up: workers started, model loaded, first batch done
    workers: int = 0
    cpus_per_worker: int = 0


# --- the worker -----------------------------------------------------------------------------------------------
class EmbedActor:
    """One per Ray worker: the model (and the index connection) is opened once here; every call decodes,
    embeds and delivers one batch of files. Two calls run at once (threads) but only one encodes, so one
    batch is decoded while the other is encoded (Pillow and onnxruntime release the GIL)."""

    def __init__(self, job: Job, faults: str | None = None):
        self.job, self.faults = job, faults  # faults: the driver's fault-injection spec (``clipforge._faults``)
        self.encoding = threading.Lock()
        # lazy: the text encoder is never used here, so its session is never created (~0.8 s, ~240 MB a worker)
        self.model = ZeroShotModel.from_onnx(
            job.folder, threads=job.threads, lazy=True, backend=job.backend, precision=job.precision
        )
        self.writer = records.IndexWriter(job.db, self.model) if job.db else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        decoded = records.decode_batch(batch, self.model.manifest.image, self.job.draft)
        with self.encoding:  # one batch at a time on the model's threads; the other call decodes meanwhile
            if self.writer is not None:
                self.writer.write(decoded, batch["known"])
                out = records.status_columns(decoded, batch["known"])
            else:
                vectors = records.embed_decoded(self.model, decoded, self.job.batch_size, self.job.normalize)
                out = records.embedding_columns(decoded, vectors)
            # tests: die after the batch's writes, before returning it, so the retried batch writes them again
            _faults.kill_point("batch", self.faults)
        return out


# --- the driver -----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def connected(options: RayOptions) -> Iterator[int]:
    """Join (or start) Ray for the block; yields the number of workers to run. A Ray instance that was already
    initialised by the caller is used and left running; one started here is shut down at the end."""
    ray = require("ray", "ray")
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(
                address=options.address,
                include_dashboard=False,
                logging_level=_log_level(),
                log_to_driver=bool(os.environ.get("CLIPFORGE_DEBUG")),
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise InputError(
                f"cannot connect to Ray at {options.address or '$RAY_ADDRESS/local'} "
                f"({str(exc).strip().splitlines()[0]}); start it with 'ray start --head' or drop "
                "--address"
            ) from exc
    try:
        _quiet_data()
        yield _worker_count(ray, options)
    finally:
        if started:
            ray.shutdown()


def _log_level() -> int:
    return logging.INFO if os.environ.get("CLIPFORGE_DEBUG") else logging.ERROR


def _quiet_data() -> None:
    """clipforge shows its own progress; Ray Data's bars and execution banners would interleave with it."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(_log_level())


def _worker_count(ray, options: RayOptions) -> int:
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if options.cpus_per_worker > cpus:
        raise InputError(
            f"--cpus-per-worker {options.cpus_per_worker} exceeds the cluster's {cpus} CPU(s); lower it or add nodes"
        )
    return options.workers or max(1, cpus // options.cpus_per_worker)


def pipeline(files, job: Job, options: RayOptions, workers: int):
    """The lazy dataset: the files' rows -> their bytes (read tasks) -> ``workers`` embedding actors."""
    import ray.data

    # blocks of whole batches, at most ~MAX_BLOCKS of them (each block is one read task)
    step = options.batch_size * max(1, -(-files.num_rows // (options.batch_size * MAX_BLOCKS)))
    dataset = ray.data.from_arrow([files.slice(i, step) for i in range(0, files.num_rows, step)])
    # Reading is I/O: the read tasks ask for no CPU, so a pool that takes every CPU cannot starve them.
    dataset = dataset.map_batches(records.read_files, batch_size=options.batch_size, batch_format="numpy", num_cpus=0)
    with warnings.catch_warnings():  # Ray 2.60 deprecates actor options given as keywords but has no other way
        warnings.simplefilter("ignore", DeprecationWarning)
        return dataset.map_batches(
            EmbedActor,
            fn_constructor_kwargs={"job": job, "faults": _faults.current()},
            batch_size=options.batch_size,
            batch_format="numpy",
            num_cpus=options.cpus_per_worker,
            compute=ray.data.ActorPoolStrategy(
                size=workers, max_concurrent_calls_per_actor=CALLS_PER_WORKER, enable_true_multi_threading=True
            ),
            max_restarts=MAX_RESTARTS,
            max_task_retries=MAX_TASK_RETRIES,
        )


def run(
    files, job: Job, options: RayOptions, consume: Callable[[dict], None] | None = None, show: bool = True
) -> RunStats:
    """Process the files in ``files`` (an Arrow table from ``records.file_table``); each result batch goes to
    ``consume`` on the driver. Unreadable files are counted and listed, never fatal."""
    start = time.perf_counter()
    stats = RunStats(cpus_per_worker=options.cpus_per_worker)
    if not files.num_rows:
        return stats
    # Ray's driver prints worker deaths and retries to stdout from a thread: keep stdout for --json output
    with (
        connected(options) as workers,
        counter("images", files.num_rows, show) as advance,
        contextlib.redirect_stdout(sys.stderr),
        warnings.catch_warnings(),
    ):
        # a run with fewer batches than workers is no problem worth a warning
        warnings.filterwarnings("ignore", "The minimum number of concurrent actors", UserWarning)
        stats.workers = workers
        for batch in pipeline(files, job, options, workers).iter_batches(batch_size=None, batch_format="numpy"):
            stats.first_result_seconds = stats.first_result_seconds or time.perf_counter() - start
            _tally(stats, batch)
            if consume is not None:
                consume(batch)
            advance(len(batch["path"]))
    stats.seconds = time.perf_counter() - start
    return stats


def _tally(stats: RunStats, batch: dict[str, np.ndarray]) -> None:
    bad = batch["error"] != ""
    stats.unreadable += [(str(p), str(e)) for p, e in zip(batch["path"][bad], batch["error"][bad])]
    statuses = batch["status"] if "status" in batch else np.where(bad, "unreadable", "added")
    for status, n in zip(*np.unique(statuses.astype(str), return_counts=True)):
        stats.counts[status] = stats.counts.get(status, 0) + int(n)


# --- the two jobs -----------------------------------------------------------------------------------------------
def embed_to_parquet(
    paths: list[Path],
    folder: Path,
    output: Path,
    options: RayOptions,
    normalize: bool = True,
    show: bool = True,
    backend: str = "auto",
    precision: str | None = None,
) -> tuple[RunStats, int]:
    """``clipforge embed --engine ray``: embeddings of ``paths`` (decoded exactly, as the local engine does)
    into one parquet file (path, sha256, embedding); returns the stats and the number of rows written."""
    dim = Manifest.load(folder).embed_dim
    job = Job(
        str(Path(folder).resolve()),
        options.cpus_per_worker,
        options.batch_size,
        normalize=normalize,
        backend=backend,
        precision=precision,
    )
    metadata = model_metadata(ModelRecord.of_folder(folder))  # ``clipforge index --embeddings`` checks it
    with records.ParquetWriter(output, dim, metadata=metadata) as writer:
        stats = run(records.file_table(records.stat_files(paths)), job, options, consume=writer.write, show=show)
    return stats, writer.count


def index_into(
    db: str,
    model: str | Path | None,
    paths: list[Path],
    options: RayOptions,
    exact_decode: bool = False,
    show: bool = True,
) -> tuple[IndexSummary, int]:
    """``clipforge index --engine ray``: what ``Index.add`` does, with the decoding, embedding and writes on Ray
    workers. ``db`` must be a PostgreSQL URL (many workers write at once). Returns the ``IndexSummary`` and the
    number of images the index then holds."""
    if not is_postgres(db):
        raise InputError(
            f"--engine ray writes from many workers at once, which needs a PostgreSQL index "
            f"(--db postgresql://...), not the SQLite file {db}; use the local engine for SQLite"
        )
    with Index(db, model) as index:
        summary = _index_add(index, db, paths, options, exact_decode, show)
        return summary, index.count()


def _index_add(
    index: Index, db: str, paths: list[Path], options: RayOptions, exact_decode: bool, show: bool
) -> IndexSummary:
    """``Index.add`` on Ray: the index's plan (it also records the model before any worker opens the index),
    its removals stored here, the files to read stored by the workers through ``Index.store``."""
    start = time.perf_counter()
    plan = index.plan(paths)
    removed = index.store(Batch(removals=plan.remove)).removed if plan.remove else 0
    draft = None if exact_decode else draft_request(index.model.manifest.image)
    job = Job(str(Path(index.model.folder).resolve()), options.cpus_per_worker, options.batch_size, draft, db=db)
    files = records.file_table([f for f, _ in plan.read], plan.known)
    stats = run(files, job, options, show=show)
    c = stats.counts
    return IndexSummary(
        c.get("added", 0),
        c.get("updated", 0),
        removed,
        list(plan.unreadable) + stats.unreadable,
        round(time.perf_counter() - start, 3),
        plan.unchanged + c.get("unchanged", 0),
    )
