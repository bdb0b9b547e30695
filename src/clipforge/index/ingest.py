"""The indexing loop: decode (threads, one batch ahead) -> encode -> one transaction per batch.

A batch is committed whole or not at all, so a process killed at any moment leaves a consistent database, and
a rerun skips every committed file (same path, size and mtime) without re-embedding it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field

from clipforge.index.base import Backend, Row, Stored, Touch
from clipforge.index.walker import Decoded, Decoder, FileState

KILL_ENV = "CLIPFORGE_DEBUG_KILL_AFTER_BATCHES"


@dataclass
class Counts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def plan(files: list[FileState], stored: dict[str, Stored]) -> tuple[list[tuple[FileState, str | None]], int]:
    """Files to (re)read, each with its stored sha256 (None when new), and how many are unchanged."""
    todo, unchanged = [], 0
    for f in files:
        row = stored.get(f.path)
        if row is not None and row.size == f.size and row.mtime == f.mtime:
            unchanged += 1
        else:
            todo.append((f, row.sha256 if row else None))
    return todo, unchanged


def ingest(
    backend: Backend,
    model,
    todo: list[tuple[FileState, str | None]],
    counts: Counts,
    *,
    exact: bool,
    batch_size: int,
    threads: int | None,
    show: bool,
) -> None:
    """Embed and store ``todo`` in batches of ``batch_size``."""
    if not todo:
        return
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    decoder = Decoder(model.manifest.image, exact, threads)
    try:
        with rate_progress(len(todo), show) as advance:
            pending = decoder.submit(batches[0])
            for n, batch in enumerate(batches):
                results = [f.result() for f in pending]
                if n + 1 < len(batches):
                    pending = decoder.submit(batches[n + 1])  # decoded while this batch is encoded
                _store(backend, model, results, counts, known={s.path: sha for s, sha in batch})
                advance(len(batch))
                kill_point(n + 1)
    finally:
        decoder.close()


def _store(backend: Backend, model, results: list[Decoded], counts: Counts, known: dict[str, str | None]) -> None:
    from clipforge.runtime.images import to_pixel_values
    from clipforge.runtime.scoring import l2_normalize

    good = [d for d in results if d.pixels is not None]
    vectors = (
        l2_normalize(model.encode_pixels(to_pixel_values([d.pixels for d in good], model.manifest.image)))
        if good
        else []
    )
    rows = [Row(d.state.path, d.state.size, d.state.mtime, d.sha256, v) for d, v in zip(good, vectors)]
    touches = [Touch(d.state.path, d.state.size, d.state.mtime) for d in results if d.unchanged]
    bad = [d for d in results if d.error]
    # a stored file that changed and is now unreadable: its old embedding is stale, drop the row
    backend.apply(rows, touches, [d.state.path for d in bad if known.get(d.state.path)])
    counts.added += sum(known.get(r.path) is None for r in rows)
    counts.updated += sum(known.get(r.path) is not None for r in rows)
    counts.unchanged += len(touches)
    counts.unreadable += [(d.state.path, d.error) for d in bad]


def kill_point(batches_done: int) -> None:
    """Test hook: ``CLIPFORGE_DEBUG_KILL_AFTER_BATCHES=N`` SIGKILLs the process after N committed batches."""
    if os.environ.get(KILL_ENV) == str(batches_done):
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def rate_progress(total: int, show: bool):
    """Yield ``advance(n)``: a bar with images/s and time left on stderr (nothing when ``show`` is false)."""
    if not show:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from clipforge.progress import console

    rate = TextColumn("{task.fields[rate]}")
    with Progress(
        TextColumn("indexing"),
        BarColumn(),
        MofNCompleteColumn(),
        rate,
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=not console.is_terminal,
        disable=not console.is_terminal,
    ) as bar:  # off a terminal rich would leave an empty line
        task = bar.add_task("indexing", total=total, rate="")

        def advance(n: int) -> None:
            bar.advance(task, n)
            speed = bar.tasks[0].speed
            bar.update(task, rate=f"{speed:.1f} img/s" if speed else "")

        yield advance
