"""Dynamic batching: concurrent requests' items are coalesced into one encoder run.

The first item of a batch waits for company only while more items are known to be on their way (announced with
``expect`` while their images are being decoded), and at most ``max_wait_ms`` (less if it already waited while
the encoder was busy): a lone request never pays the wait. A batch holds at most ``max_batch`` items, and runs
happen in the model's executor, off the event loop. If a batch run raises, every item is retried alone, so one
bad item fails only its own request. Items whose caller is cancelled (the request timed out, its client went
away, the server is shutting down) leave the queue at once and never reach the encoder.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipforge.serve.errors import ApiError


@dataclass
class _Entry:
    item: Any
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    """``await batcher.submit(item)`` -> that item's row of ``run_batch(items)``."""

    def __init__(
        self,
        name: str,
        run_batch: Callable[[list], np.ndarray],
        executor: Executor,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 4096,
        on_batch: Callable[[str, int], None] | None = None,
    ):
        self.name, self.run_batch, self.executor = name, run_batch, executor
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait_ms / 1000, max_queue
        self.on_batch = on_batch or (lambda name, size: None)
        self._items: deque[_Entry] = deque()
        self.pending = 0  # items announced by ``expect`` and not submitted (or given up) yet
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    @property
    def depth(self) -> int:
        return len(self._items)

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while self._items:
            entry = self._items.popleft()
            if not entry.future.done():
                entry.future.set_exception(ApiError(503, None, "the server is shutting down; retry"))

    def expect(self, n: int = 1) -> None:
        """``n`` items are being prepared (decoded) and will be submitted or given up with ``arrived``."""
        self.pending += n

    def arrived(self, n: int = 1) -> None:
        self.pending -= n
        if self._wake is not None:
            self._wake.set()

    async def submit(self, item) -> np.ndarray:
        if self._task is None or self._task.done():
            raise ApiError(503, None, f"the {self.name} encoder is not running; retry when /readyz says ready")
        if len(self._items) >= self.max_queue:
            raise ApiError(
                503,
                None,
                f"{len(self._items)} items are queued for the {self.name} encoder; retry later",
                headers={"Retry-After": "1"},
            )
        entry = _Entry(item, asyncio.get_running_loop().create_future())
        self._items.append(entry)
        self._wake.set()
        try:
            return await entry.future
        except asyncio.CancelledError:
            self._drop_abandoned()
            raise

    def _drop_abandoned(self) -> None:
        """Remove queued items nobody waits for any more (their futures were cancelled with their callers)."""
        if any(e.future.done() for e in self._items):
            self._items = deque(e for e in self._items if not e.future.done())

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._gather()
            batch = [self._items.popleft() for _ in range(min(self.max_batch, len(self._items)))]
            batch = [e for e in batch if not e.future.done()]  # their requests timed out or went away
            if not batch:
                continue
            self.on_batch(self.name, len(batch))
            outcomes = await loop.run_in_executor(self.executor, self._run_safely, [e.item for e in batch])
            for entry, outcome in zip(batch, outcomes):
                if entry.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    entry.future.set_exception(outcome)
                else:
                    entry.future.set_result(outcome)

    async def _gather(self) -> None:
        """Wait for a first item, then for announced company until the batch is full, nothing more is on its
        way, or the first item's wait is up."""
        while not self._items:
            self._wake.clear()
            await self._wake.wait()
        deadline = self._items[0].arrived + self.max_wait
        while len(self._items) < self.max_batch and self.pending > 0 and (left := deadline - time.monotonic()) > 0:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                break

    def _run_safely(self, items: list) -> list:
        """Rows of one batch run; if it fails, each item alone, so only the bad item gets the exception."""
        try:
            return list(self.run_batch(items))
        except Exception as exc:  # noqa: BLE001 - retried item by item below
            if len(items) == 1:
                return [_as_error(exc)]
        return [_as_error(self._one(item)) for item in items]

    def _one(self, item):
        try:
            return self.run_batch([item])[0]
        except Exception as exc:  # noqa: BLE001 - becomes this item's error
            return exc


def _as_error(outcome):
    if isinstance(outcome, ApiError) or not isinstance(outcome, BaseException):
        return outcome
    return ApiError(422, None, f"the encoder failed on this item ({type(outcome).__name__}: {outcome}); check it")
