"""``create_app(model, index=None, settings=None)``: the FastAPI application."""

from __future__ import annotations

import contextlib
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from clipforge import __version__
from clipforge.index import Index
from clipforge.serve import errors
from clipforge.serve.drain import DrainMiddleware
from clipforge.serve.middleware import (
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    HeadMiddleware,
    JsonGuardMiddleware,
    MetricsMiddleware,
)
from clipforge.serve.routes import classify, embeddings, health, page, search
from clipforge.serve.service import IndexLoader, ModelLoader, ServedModel, Service
from clipforge.serve.settings import ServeSettings


def create_app(
    model: ServedModel | ModelLoader | str | Path,
    index: Index | IndexLoader | None = None,
    settings: ServeSettings | None = None,
) -> FastAPI:
    """``model``: a ``ZeroShotModel``, a model folder / hub id, or a no-argument callable that loads one (the
    server then answers /healthz at once and /readyz when loading and the probe are done). ``index``: an
    ``Index``, a callable ``model -> Index`` (run after the model loads), or None (no search)."""
    service = Service(model, index, settings or ServeSettings())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="clipforge",
        version=__version__,
        lifespan=lifespan,
        description="Embeddings, zero-shot classification and search with a CLIP-family model.",
    )
    app.state.service = service
    errors.install(app)
    for module in (health, embeddings, classify, search, page):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(page.STATIC)), name="static")
    settings = service.settings  # middleware added last runs first: metrics, drain, HEAD, key, body limits, JSON guard
    app.add_middleware(JsonGuardMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(ApiKeyMiddleware, key=settings.api_key)
    app.add_middleware(HeadMiddleware)
    app.add_middleware(DrainMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    return app
