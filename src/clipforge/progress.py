"""Progress display on stderr (rich), so stdout stays clean for JSON and tables."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from clipforge._context import temporarily

T = TypeVar("T")
console = Console(stderr=True)


def _progress() -> Progress:
    """A bar on a terminal; nothing at all when stderr is a pipe or a file (rich would leave an empty line)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=not sys.stderr.isatty(),
        disable=not console.is_terminal,
    )


@contextlib.contextmanager
def steps(show: bool, total: int):
    """Yield ``step(description)``: advances a bar of ``total`` named stages."""
    if not show:
        yield lambda description: None
        return
    with _progress() as bar:
        task = bar.add_task("starting", total=total)
        started = [False]

        def step(description: str) -> None:
            if started[0]:
                bar.advance(task)
            started[0] = True
            bar.update(task, description=description)

        yield step
        bar.update(task, completed=total)


def track(items: Iterable[T], description: str, total: int | None = None, show: bool = True) -> Iterator[T]:
    """Iterate with a progress bar (no bar when ``show`` is false)."""
    if not show:
        yield from items
        return
    with _progress() as bar:
        yield from bar.track(items, total=total, description=description)


@contextlib.contextmanager
def counter(description: str, total: int | None, show: bool = True):
    """Yield ``advance(n)``: a bar of ``total`` items advanced by whatever arrives (batches of any size)."""
    if not show:
        yield lambda n=1: None
        return
    with _progress() as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def quiet_transformers():
    """Hide transformers' own bars ("Loading weights", "Writing model shards") inside clipforge's steps."""
    from transformers.utils import logging

    def show(on: bool) -> None:
        logging.enable_progress_bar() if on else logging.disable_progress_bar()

    return temporarily(logging.is_progress_bar_enabled, show, False)
