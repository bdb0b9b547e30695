"""The indexing plan and loop: what to do for some paths (``Plan``), one transaction's worth of files
(``Batch``) and what it did (``Counts``); the local loop decodes (threads, one batch ahead) while the previous
batch is encoded and stored.

A batch is committed whole or not at all, so a process killed at any moment leaves a consistent database, and
a rerun skips every committed file (same path, size and mtime) without re-embedding it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from clipforge._faults import kill_point
from clipforge.index.base import IndexSummary, Stored
from clipforge.index.walker import Decoded, Decoder, FileState, Walk
from clipforge.progress import console
from clipforge.specs import ImageSpec


@dataclass
class Counts:
    """What storing one or more batches did: files added, updated (content changed), unchanged, rows removed,
    and the (path, reason) of every file that could not be read."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        """Fold ``other`` into these counts."""
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.removed += other.removed
        self.unreadable += other.unreadable

    def summary(self, seconds: float) -> IndexSummary:
        return IndexSummary(self.added, self.updated, self.removed, list(self.unreadable), seconds, self.unchanged)


@dataclass
class Plan:
    """What indexing some paths takes: the files to read, each with the sha256 of its stored row (None when
    new), the stored rows to remove (files deleted under the paths), how many files are unchanged (same size
    and mtime as their row), and the files the walk could not stat."""

    read: list[tuple[FileState, str | None]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    unchanged: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def known(self) -> dict[str, str | None]:
        """Path -> stored sha256 (None when new) of every file to read."""
        return {state.path: sha for state, sha in self.read}


@dataclass(frozen=True)
class Batch:
    """One transaction: ``decoded`` files (``known``: the sha256 of each one's stored row, None when new) and
    ``removals``, paths whose rows are deleted."""

    decoded: Sequence[Decoded] = ()
    known: Mapping[str, str | None] = field(default_factory=dict)
    removals: Sequence[str] = ()


def make_plan(found: Walk, stored: Mapping[str, Stored]) -> Plan:
    """The plan for a walk against the stored rows (path -> size, mtime, sha256). A row stored without photo
    metadata is read again: its content is unchanged (same sha256), so only its header is parsed."""
    present = {f.path for f in found.files}
    plan = Plan(remove=[p for p in stored if p not in present and found.covers(p)], unreadable=list(found.unreadable))
    for f in found.files:
        row = stored.get(f.path)
        if row is not None and row.size == f.size and row.mtime == f.mtime and row.has_info:
            plan.unchanged += 1
        else:
            plan.read.append((f, row.sha256 if row else None))
    return plan


def ingest(
    store: Callable[[Batch], Counts],
    spec: ImageSpec,
    todo: list[tuple[FileState, str | None]],
    counts: Counts,
    *,
    exact: bool,
    batch_size: int,
    threads: int | None,
    show: bool,
) -> None:
    """Decode ``todo`` (for the model's image ``spec``) in batches of ``batch_size`` and hand each to ``store``
    (one transaction), adding what it did to ``counts``."""
    if not todo:
        return
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    decoder = Decoder(spec, exact, threads)
    try:
        with rate_progress(len(todo), show) as advance:
            pending = decoder.submit(batches[0])
            for n, batch in enumerate(batches):
                results = [f.result() for f in pending]
                if n + 1 < len(batches):
                    pending = decoder.submit(batches[n + 1])  # decoded while this batch is encoded
                counts.add(store(Batch(results, {s.path: sha for s, sha in batch})))
                advance(len(batch))
                kill_point("batch")
    finally:
        decoder.close()


@contextlib.contextmanager
def rate_progress(total: int, show: bool, label: str = "indexing"):
    """Yield ``advance(n)``: a bar with images/s and time left on stderr (nothing when ``show`` is false)."""
    if not show:
        yield lambda n: None
        return
    rate = TextColumn("{task.fields[rate]}")
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        rate,
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=not console.is_terminal,
        disable=not console.is_terminal,
    ) as bar:  # off a terminal rich would leave an empty line
        task = bar.add_task(label, total=total, rate="")

        def advance(n: int) -> None:
            bar.advance(task, n)
            speed = bar.tasks[0].speed
            bar.update(task, rate=f"{speed:.1f} img/s" if speed else "")

        yield advance
