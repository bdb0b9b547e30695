"""Inference time of a built graph, for the two decisions that depend on speed: keep a fused graph only if it is
not slower, and ``--quantize auto``'s fastest candidate. The session is created once, before the timed loop, and
the feeds are prepared once; only ``session.run`` is timed.

A build takes a ``timer``: any callable ``(path, encoder) -> seconds per run`` (``auto`` also passes
``session=SessionConfig(backend=..., precision=...)`` for candidates on another backend or precision).
``InferenceTimer`` is the real one;
tests pass a function returning known figures and check the decision."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from clipforge.builder.parity import Probe, feeds
from clipforge.runtime.encoders import Encoder
from clipforge.runtime.sessions import SessionConfig, make_session


class Timer(Protocol):
    """``session`` (keyword, only for candidates not on onnxruntime/fp32): the backend/precision to time on."""

    def __call__(self, path: Path, encoder: str, session: SessionConfig = ...) -> float: ...


def median_seconds(
    run: Callable[[], object], repeats: int = 3, warmup: int = 1, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = clock()
        run()
        times.append(clock() - start)
    return statistics.median(times)


class InferenceTimer:
    """Seconds per pass over the probe's inputs for the graph at ``path`` (session made outside the timing)."""

    def __init__(self, probe: Probe, repeats: int = 3):
        self.probe, self.repeats = probe, repeats

    def __call__(self, path: Path, encoder: str, session: SessionConfig = SessionConfig()) -> float:
        runner = Encoder(make_session(path, session), encoder)
        batches = feeds(self.probe, encoder, runner)
        return median_seconds(lambda: [runner(feed) for feed in batches], self.repeats)
