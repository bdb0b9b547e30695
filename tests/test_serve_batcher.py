"""The dynamic batcher in-process: concurrent items share one run, and an item that breaks a run fails alone."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")

from clipforge.serve.batcher import Batcher  # noqa: E402
from clipforge.serve.errors import ApiError  # noqa: E402


def _run(coro):
    return asyncio.run(coro)


class FakeEncoder:
    """Doubles numbers; a batch holding "bad" raises, as an encoder would on an input it cannot take."""

    def __init__(self, delay: float = 0.0):
        self.batches: list[list] = []
        self.delay = delay

    def __call__(self, items):
        self.batches.append(list(items))
        time.sleep(self.delay)
        if "bad" in items:
            raise ValueError("cannot encode 'bad'")
        return np.array([[2.0 * x] for x in items])


async def _submit_all(batcher, items):
    batcher.start()
    try:
        return await asyncio.gather(*[batcher.submit(i) for i in items], return_exceptions=True)
    finally:
        await batcher.stop()


def test_concurrent_items_share_a_run_and_a_bad_item_fails_alone():
    encoder = FakeEncoder()
    with ThreadPoolExecutor(1) as pool:
        sizes = []
        batcher = Batcher("fake", encoder, pool, max_batch=8, max_wait_ms=50, on_batch=lambda n, s: sizes.append(s))
        out = _run(_submit_all(batcher, [1, 2, "bad", 4, 5]))
    assert encoder.batches[0] == [1, 2, "bad", 4, 5]  # one shared run first...
    assert sizes == [5]
    assert [o[0] for i, o in enumerate(out) if i != 2] == [2.0, 4.0, 8.0, 10.0]  # ...then each item alone
    assert isinstance(out[2], ApiError) and out[2].status == 422 and "cannot encode" in out[2].message


def test_batches_are_capped_and_the_wait_is_bounded():
    encoder = FakeEncoder(delay=0.01)
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher("fake", encoder, pool, max_batch=4, max_wait_ms=5)
        out = _run(_submit_all(batcher, list(range(10))))
        assert max(len(b) for b in encoder.batches) == 4
        assert [o[0] for o in out] == [2.0 * i for i in range(10)]
        lone = Batcher("fake", FakeEncoder(), pool, max_batch=64, max_wait_ms=5000)
        start = time.perf_counter()
        assert _run(_submit_all(lone, [7]))[0][0] == 14.0
    assert time.perf_counter() - start < 1.0  # nothing else announced: a lone item does not wait


def test_announced_items_are_waited_for_at_most_max_wait():
    async def scenario(wait_ms, late_s):
        encoder = FakeEncoder()
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher("fake", encoder, pool, max_batch=8, max_wait_ms=wait_ms)
            batcher.start()
            batcher.expect(1)  # e.g. an image still being decoded

            async def late():
                await asyncio.sleep(late_s)
                batcher.arrived(1)
                return await batcher.submit(2)

            out = await asyncio.gather(batcher.submit(1), late())
            await batcher.stop()
            return encoder.batches, out

    batches, out = _run(scenario(wait_ms=2000, late_s=0.05))
    assert batches == [[1, 2]] and [o[0] for o in out] == [2.0, 4.0]  # waited for the announced item
    batches, _ = _run(scenario(wait_ms=20, late_s=0.3))
    assert batches == [[1], [2]]  # but no longer than max_wait


def test_a_full_queue_is_refused_with_503():
    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher("fake", FakeEncoder(delay=0.2), pool, max_batch=1, max_wait_ms=0, max_queue=2)
            return await _submit_all(batcher, list(range(6)))

    out = _run(scenario())
    refused = [o for o in out if isinstance(o, ApiError)]
    assert refused and all(o.status == 503 for o in refused)
    assert [o[0] for o in out if not isinstance(o, ApiError)] == [
        2.0 * i for i, o in enumerate(out) if not isinstance(o, ApiError)
    ]


def test_a_request_over_its_time_limit_is_a_503():
    from clipforge.serve.service import Service
    from clipforge.serve.settings import ServeSettings

    service = Service(model=None, index=None, settings=ServeSettings(request_timeout_s=0.05))

    async def scenario():
        with pytest.raises(ApiError) as info:
            await service.within_timeout(asyncio.sleep(5))
        return info.value

    error = _run(scenario())
    assert error.status == 503 and "longer than 0.05 s" in error.message
    service.model_executor.shutdown()
    service.decode_executor.shutdown()


def test_bad_settings_are_refused_with_every_problem():
    from clipforge.errors import InputError
    from clipforge.serve.settings import ServeSettings

    with pytest.raises(InputError, match="max_batch must be > 0.*max_wait_ms must be >= 0"):
        ServeSettings(max_batch=0, max_wait_ms=-1)


def test_cancelled_items_leave_the_queue_and_never_run():
    """A request that times out or loses its client cancels its waits: its queued items go at once (the queue
    depth drops, the encoder never sees them) while an item in a running batch finishes."""
    encoder = FakeEncoder(delay=0.2)

    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher("fake", encoder, pool, max_batch=2, max_wait_ms=0)
            batcher.start()
            running = asyncio.ensure_future(batcher.submit(1))  # occupies the encoder for 0.2 s
            await asyncio.sleep(0.05)
            doomed = asyncio.ensure_future(asyncio.gather(*[batcher.submit(i) for i in range(100, 110)]))
            await asyncio.sleep(0.01)
            queued = batcher.depth
            doomed.cancel()
            await asyncio.gather(doomed, return_exceptions=True)
            left = batcher.depth
            survivor = await batcher.submit(7)
            first = await running
            await batcher.stop()
            return queued, left, first, survivor

    queued, left, first, survivor = _run(scenario())
    assert (queued, left) == (10, 0)
    assert (first[0], survivor[0]) == (2.0, 14.0)
    assert encoder.batches == [[1], [7]]
