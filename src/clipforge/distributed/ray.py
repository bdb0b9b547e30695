"""The Ray engine: embed or index many image files on a Ray cluster (or a local Ray instance) with Ray Data.

Files are listed on the driver; ``ray.data.read_binary_files`` reads their bytes in parallel tasks;
``map_batches`` runs :class:`EmbedActor`, a callable class that loads one ``ZeroShotModel`` per worker from the
exported folder (shipped as a path: no re-export per worker) with onnxruntime's intra-op threads set to the
worker's CPU share, and calls the engine-independent :func:`clipforge.distributed.records.embed_files`. Results
stream back to the driver, which writes the parquet file and shows progress; for an index, every worker upserts
its rows into the (PostgreSQL) index itself and only the per-file status comes back.

A worker that dies is restarted and its batch retried (``max_restarts``/``max_task_retries``); the writes are
keyed by path (+ sha256), so a retried batch never duplicates a row. This is the only module that imports Ray.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from clipforge.errors import InputError, require
from clipforge.runtime.batches import ImageFailure

MAX_RESTARTS = 4  # a worker process that dies is restarted this many times ...
MAX_TASK_RETRIES = 4  # ... and the batch it was running is retried on the restarted worker
KILL_SWITCH_ENV = "CLIPFORGE_RAY_KILL_AFTER"  # tests: "N:MARKER" - the first worker to finish N batches
#                                               creates MARKER and SIGKILLs itself (once: MARKER then exists)


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


@dataclass
class RunSummary:
    """What a run did: images embedded (or upserted), unreadable files, wall time, the pool it ran on."""

    done: int = 0
    failures: list[ImageFailure] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 0
    cpus_per_worker: int = 0

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


# --- the worker -----------------------------------------------------------------------------------------------
class EmbedActor:
    """One per Ray worker: the model is loaded once here, then every call embeds one batch of files.
    ``sink`` (optional) is opened once per worker and takes each batch's records (an index upsert)."""

    def __init__(self, folder: str, threads: int, batch_size: int, normalize: bool = True, sink=None,
                 kill_after: str | None = None):
        from clipforge.runtime.model import ZeroShotModel

        self.model = ZeroShotModel.from_onnx(folder, threads=threads)
        self.batch_size, self.normalize = batch_size, normalize
        self.sink = sink.open() if sink is not None else None
        self.kill_after, self.calls = kill_after, 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from clipforge.distributed.records import embed_files

        records = embed_files(self.model, batch["path"], batch["bytes"], self.batch_size, self.normalize)
        if self.sink is not None:
            self.sink.write(records)
        self.calls += 1
        _maybe_die(self.kill_after, self.calls)
        columns = records.as_columns()
        return {k: columns[k] for k in ("path", "error")} if self.sink is not None else columns


def _maybe_die(kill_after: str | None, calls: int) -> None:
    """The fault-injection hook for tests (see ``KILL_SWITCH_ENV``): dies after its batch's writes, before
    returning, so the retried batch writes the same rows again."""
    if not kill_after:
        return
    after, marker = kill_after.split(":", 1)
    if calls < int(after):
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


# --- the driver -----------------------------------------------------------------------------------------------
def _ray():
    return require("ray", "ray")


@contextlib.contextmanager
def connected(options: RayOptions) -> Iterator[int]:
    """Join (or start) Ray for the block; yields the number of workers to run. A Ray instance that was already
    initialised by the caller is used and left running; one started here is shut down at the end."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=options.address, include_dashboard=False, logging_level=_log_level(),
                     log_to_driver=bool(os.environ.get("CLIPFORGE_DEBUG")))
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise InputError(f"cannot connect to Ray at {options.address or '$RAY_ADDRESS/local'} "
                             f"({str(exc).splitlines()[0]}); start it with 'ray start --head' or drop "
                             "--address") from exc
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
        raise InputError(f"--cpus-per-worker {options.cpus_per_worker} exceeds the cluster's {cpus} CPU(s); "
                         "lower it or add nodes")
    return options.workers or max(1, cpus // options.cpus_per_worker)


def embedded(paths: list[Path], folder: Path, options: RayOptions, workers: int, normalize: bool = True,
             sink=None):
    """The lazy Ray dataset: read the files' bytes, then embed them on ``workers`` actors."""
    import ray.data

    # Reading is I/O: its tasks ask for no CPU, so a pool that takes every CPU cannot starve them.
    dataset = ray.data.read_binary_files([str(p) for p in paths], include_paths=True, num_cpus=0)
    kwargs = dict(folder=str(folder), threads=options.cpus_per_worker, batch_size=options.batch_size,
                  normalize=normalize, sink=sink, kill_after=os.environ.get(KILL_SWITCH_ENV))
    with warnings.catch_warnings():  # Ray 2.60 deprecates actor options given as keywords but has no other way
        warnings.simplefilter("ignore", DeprecationWarning)
        return dataset.map_batches(
            EmbedActor, fn_constructor_kwargs=kwargs, batch_size=options.batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=options.cpus_per_worker,
            max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES,
        )


def run(paths: list[Path], folder: Path, options: RayOptions, consume: Callable[[dict], None] | None = None,
        sink=None, normalize: bool = True, show: bool = True) -> RunSummary:
    """Embed ``paths`` with the model in ``folder``: each result batch goes to ``consume`` (on the driver),
    or, with a ``sink``, is written by the workers themselves. Unreadable files are counted in the summary."""
    from clipforge.progress import counter

    start = time.perf_counter()
    summary = RunSummary(cpus_per_worker=options.cpus_per_worker)
    with connected(options) as workers, counter("images", len(paths), show) as advance:
        summary.workers = workers
        dataset = embedded(paths, folder, options, workers, normalize, sink)
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            ok = batch["error"] == ""
            summary.done += int(ok.sum())
            summary.failures += [ImageFailure(str(p), str(e)) for p, e in zip(batch["path"][~ok], batch["error"][~ok])]
            if consume is not None:
                consume(batch)
            advance(len(ok))
    summary.seconds = time.perf_counter() - start
    return summary
