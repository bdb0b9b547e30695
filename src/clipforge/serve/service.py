"""What the routes share: the model (loaded in the background so /healthz answers at once), the index, the
image and text batchers, the decode and model executors, metrics, the readiness probe, the label-embedding cache,
and the per-request time limit (which also ends a request's work when its client disconnects)."""

from __future__ import annotations

import asyncio
import functools
import io
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image
from starlette.requests import Request

from clipforge._dblocation import redact
from clipforge.errors import InputError
from clipforge.index import EmbeddingModel, Index
from clipforge.models import open_model
from clipforge.runtime.encoders import Encoder
from clipforge.runtime.patches import Patches, with_max_patches
from clipforge.runtime.scoring import l2_normalize
from clipforge.runtime.text import TextTokenizer
from clipforge.serve.batcher import Batcher
from clipforge.serve.decoding import decode_pixels
from clipforge.serve.errors import ApiError
from clipforge.serve.prometheus import Metrics
from clipforge.serve.settings import ServeSettings

log = logging.getLogger("clipforge.serve")

LABEL_CACHE_ENTRIES = 100_000


class ServedModel(EmbeddingModel, Protocol):
    """What the server uses of a model: the index's needs, the tokenizer (token counts) and the image encoder
    (the execution providers /readyz reports)."""

    image_encoder: Encoder

    @property
    def tokenizer(self) -> TextTokenizer: ...


ModelLoader = Callable[[], ServedModel]
IndexLoader = Callable[[ServedModel], Index]


def _probe_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 60, 200)).save(out, "PNG")
    return out.getvalue()


def model_loader(model: ServedModel | ModelLoader | str | Path) -> ModelLoader:
    """A no-argument loader for ``model``: a loaded model is returned as it is, a model folder / hub id is
    opened with ``open_model``, a loader is used as given."""
    if isinstance(model, (str, Path)):
        return functools.partial(open_model, model)
    if isinstance(model, EmbeddingModel):  # the base protocol: its check reads no lazy property
        return lambda: model
    return model


def index_loader(index: Index | IndexLoader | None) -> IndexLoader | None:
    """A loader ``model -> Index`` for ``index``: an open ``Index`` is returned as it is."""
    if isinstance(index, Index):
        return lambda _model: index
    return index


class Service:
    """``model``: a loaded model (``ZeroShotModel``), a model folder / hub id, or a no-argument callable that
    loads one; ``index``: an ``Index``, a callable ``model -> Index``, or None. Both load in the background
    (``start``), so /healthz answers at once."""

    def __init__(
        self,
        model: ServedModel | ModelLoader | str | Path | None,
        index: Index | IndexLoader | None,
        settings: ServeSettings,
    ):
        self.settings, self.metrics = settings, Metrics()
        self._load_model = model_loader(model) if model is not None else None
        self._load_index = index_loader(index)
        self.model: ServedModel | None = None
        self.index: Index | None = None
        self.ready, self.error = False, None
        self.model_executor = ThreadPoolExecutor(1, thread_name_prefix="clipforge-model")
        self.decode_executor = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="clipforge-decode")
        common = dict(
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
            on_batch=self.metrics.observe_batch,
        )
        self.images = Batcher("image", self._run_images, self.model_executor, **common)
        self.texts = Batcher("text", self._run_texts, self.model_executor, **common)
        self.metrics.gauge(
            "clipforge_queue_depth",
            "Items waiting for an encoder.",
            lambda: {"image": self.images.depth, "text": self.texts.depth},
        )
        self._loading: asyncio.Task | None = None
        self._labels: dict[tuple[tuple[str, ...], str], np.ndarray] = {}

    # --- life cycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.images.start()
        self.texts.start()
        self._loading = asyncio.get_running_loop().create_task(self._load())

    async def stop(self) -> None:
        if self._loading and not self._loading.done():
            self._loading.cancel()
        await self.images.stop()
        await self.texts.stop()
        self.model_executor.shutdown(wait=False, cancel_futures=True)
        self.decode_executor.shutdown(wait=False, cancel_futures=True)

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.model = await loop.run_in_executor(self.model_executor, self._load_model)
            if self._load_index is not None:
                self.index = await loop.run_in_executor(self.model_executor, self._load_index, self.model)
            await self._probe()
            if self.index is not None:
                await loop.run_in_executor(self.model_executor, self._learn_relevance)
            self.ready = True
            log.info("model %s ready", self.model_name)
        except Exception as exc:  # noqa: BLE001 - reported by /readyz instead of killing the server
            self.error = redact(f"{type(exc).__name__}: {exc}")  # /readyz needs no key
            log.error("model failed to load: %s", self.error)

    def _learn_relevance(self) -> None:
        """The page searches with ``min_score="auto"``: learn its cutoff before ready, not in the first search
        (the first time for a model, its text encoder embeds a vocabulary: ~20 s for a ViT-B/32 on 2 cores)."""
        try:
            self.index.relevance()
        except Exception as exc:  # noqa: BLE001 - the first auto search tries again and reports its error
            log.warning("min_score auto: cutoff not learnt at start: %s", redact(str(exc)))

    async def _probe(self) -> None:
        """One image and one text through the batchers: finite, unit-length rows of the model's width."""
        rows = [await self.embed_image(_probe_png(), "probe"), await self.embed_text("a photo of a probe", "probe")]
        dims = {r.shape[-1] for r in rows}
        if len(dims) != 1 or not all(np.isfinite(r).all() and abs(np.linalg.norm(r) - 1) < 1e-3 for r in rows):
            raise RuntimeError(f"probe inference gave bad embeddings (dims {dims})")

    @property
    def model_name(self) -> str:
        if self.settings.model_name:
            return self.settings.model_name
        return getattr(getattr(self.model, "folder", None), "name", None) or "clipforge"

    def require_ready(self) -> None:
        if self.error:
            raise ApiError(503, None, f"the model failed to load ({self.error}); fix it and restart the server")
        if not self.ready:
            raise ApiError(
                503, None, "the model is still loading; retry when /readyz says ready", headers={"Retry-After": "1"}
            )

    # --- encoder work (model executor) -----------------------------------------------------------------------
    def _run_images(self, pixels: list) -> np.ndarray:
        """One encoder run; NaFlex items of requests with different budgets are padded to the largest (padding
        patches are masked: an image's embedding does not depend on them)."""
        if isinstance(pixels[0], Patches):
            return l2_normalize(self.model.encode_pixels(Patches.concat(pixels)))
        return l2_normalize(self.model.encode_pixels(np.stack(pixels)))

    def _run_texts(self, texts: list[str]) -> np.ndarray:
        return self.model.embed_texts(texts, batch_size=len(texts))

    # --- what routes call ------------------------------------------------------------------------------------
    def image_spec(self, max_patches: int | None = None):
        """The pre-processing of this request's images: the model's, at the request's patch budget (NaFlex);
        422 naming ``max_patches`` for a model with fixed-size images or a budget out of range."""
        try:
            return with_max_patches(self.model.manifest.image, max_patches)
        except InputError as exc:
            raise ApiError(422, "max_patches", str(exc)) from exc

    async def embed_image(self, data: bytes, field: str, max_patches: int | None = None) -> np.ndarray:
        loop = asyncio.get_running_loop()
        spec = self.image_spec(max_patches)
        self.images.expect()
        try:
            pixels = await loop.run_in_executor(self.decode_executor, decode_pixels, data, field, spec, self.settings)
        finally:
            self.images.arrived()
        return await _named(self.images.submit(pixels), field)

    async def embed_text(self, text: str, field: str) -> np.ndarray:
        return await _named(self.texts.submit(text), field)

    async def embed_texts(self, texts: list[str], field: str) -> list[np.ndarray]:
        """Rows for ``texts`` (errors name ``field[i]``), submitted in chunks of ``max_batch`` with at most two
        chunks queued, so other requests' items join the next encoder run instead of queueing behind a long list,
        and when the request is cancelled the chunks not yet submitted never run."""
        step, rows, window = self.settings.max_batch, [], deque()
        try:
            for start in range(0, len(texts), step):
                window.append(
                    asyncio.ensure_future(
                        first_error(
                            [
                                self.embed_text(t, f"{field}[{start + i}]")
                                for i, t in enumerate(texts[start : start + step])
                            ]
                        )
                    )
                )
                if len(window) == 2:
                    rows += await window.popleft()
            while window:
                rows += await window.popleft()
        finally:
            for chunk in window:
                chunk.cancel()
        return rows

    async def label_embeddings(self, labels: list[str], templates: list[str]) -> np.ndarray:
        """Normalised class embeddings [L, D] (each label's prompts embedded through the text batcher, averaged
        over the templates, as ``ZeroShotModel.label_embeddings``), cached per templates + label."""
        key = tuple(templates)
        todo = [label for label in dict.fromkeys(labels) if (key, label) not in self._labels]
        if todo:
            rows = await self.embed_texts([t.format(label) for label in todo for t in templates], "labels")
            means = l2_normalize(np.stack(rows).reshape(len(todo), len(templates), -1).mean(axis=1))
            if len(self._labels) + len(todo) > LABEL_CACHE_ENTRIES:
                self._labels.clear()
            self._labels.update({(key, label): row for label, row in zip(todo, means)})
        return np.stack([self._labels[(key, label)] for label in labels])

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens per text as the encoder sees them: special tokens included, before padding."""
        return [len(ids) for ids in self.model.tokenizer.ids(texts)[0]]

    async def in_model_thread(self, fn: Callable, *args):
        """Run ``fn`` in the model's executor (serialised with the batches: no oversubscribed cores)."""
        return await asyncio.get_running_loop().run_in_executor(self.model_executor, fn, *args)

    async def in_decode_thread(self, fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(self.decode_executor, fn, *args)

    async def within_timeout(self, coro, request: Request | None = None):
        """Await ``coro`` for at most ``request_timeout_s`` (503 after), and only while ``request``'s client is
        connected: either way the work is cancelled, so its queued items never reach the encoders."""
        work = asyncio.ensure_future(coro)
        gone = asyncio.ensure_future(_disconnect(request)) if request is not None else None
        try:
            done, _ = await asyncio.wait(
                {work, gone} - {None}, timeout=self.settings.request_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (work, gone):
                if task is not None and not task.done():
                    task.cancel()
        if work in done:
            return work.result()
        if gone in done:
            raise ApiError(499, None, "the client closed the connection; its work was cancelled")
        raise ApiError(
            503, None, f"the request took longer than {self.settings.request_timeout_s:g} s; send fewer items or retry"
        )


async def first_error(coros: list) -> list:
    """Await all; raise the first failure in input order, else return the results in order."""
    outcomes = await asyncio.gather(*coros, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


async def _disconnect(request: Request) -> None:
    """Returns when the client of ``request`` (whose body has been read) closes the connection."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _named(awaitable, field: str):
    """An item's error names the item's field."""
    try:
        return await awaitable
    except ApiError as exc:
        if exc.field is None:
            exc.field = field
        raise
