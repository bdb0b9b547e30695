"""``clipforge serve``: the HTTP API and web page for a model (and an index with --db)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipforge._dblocation import redact, sqlite_file
from clipforge.cli import runtime_options as ro
from clipforge.errors import InputError, require
from clipforge.index import Index
from clipforge.models import open_model


def serve(
    model: ro.Model = ro.DEFAULT_MODEL,
    db: Annotated[str | None, typer.Option("--db", help="Index to search: SQLite file or postgresql:// URL.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (default: loopback only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="CLIPFORGE_API_KEY",
            show_envvar=True,
            help="Require 'Authorization: Bearer KEY' (printable ASCII) everywhere but /healthz, /readyz and the page.",
        ),
    ] = None,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Items per encoder run (1: no batching).")] = 32,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", help="Longest wait for a batch to fill.")] = 5.0,
    threads: ro.Threads = None,
    device: ro.Device = "cpu",
    max_patches: ro.MaxPatches = None,
    max_images: Annotated[int, typer.Option("--max-images", help="Images per request.")] = 64,
    max_labels: Annotated[int, typer.Option("--max-labels", help="Labels per request.")] = 1000,
    max_templates: Annotated[int, typer.Option("--max-templates", help="Templates per classify request.")] = 100,
    max_prompts: Annotated[
        int,
        typer.Option("--max-prompts", help="Labels x templates per classify request (bounds its text-encoding time)."),
    ] = 1000,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", help="Largest request body.")] = 32.0,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", help="Per-request time limit, seconds (503 after; the request's queued work is dropped)."
        ),
    ] = 60.0,
    read_timeout: Annotated[
        float,
        typer.Option(
            "--read-timeout",
            help="Seconds a client may take to send a request's headers, and again its body "
            "(then 408 / the connection is closed).",
        ),
    ] = 30.0,
    keep_alive: Annotated[
        float, typer.Option("--keep-alive", help="Seconds an idle kept-alive connection stays open.")
    ] = 5.0,
    drain: Annotated[
        float,
        typer.Option(
            "--drain", help="Seconds to finish in-flight requests on SIGTERM; requests still running then get 503."
        ),
    ] = 30.0,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """Serve embeddings, zero-shot classification and search over HTTP, with a web page at /."""
    require("fastapi", "serve")
    uvicorn = require("uvicorn", "serve")
    from clipforge.serve import ServeSettings, create_app  # FastAPI: imported only by this command
    from clipforge.serve.protocol import protocol_class

    settings = ServeSettings(
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        api_key=api_key,
        max_images=max_images,
        max_labels=max_labels,
        max_templates=max_templates,
        max_prompts=max_prompts,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        request_timeout_s=timeout,
        body_timeout_s=read_timeout,
        model_name=Path(model).name,
    )
    if keep_alive <= 0:
        raise InputError(f"--keep-alive must be > 0 seconds (got {keep_alive:g})")
    file = sqlite_file(db) if db else None
    if file is not None and not file.is_file():
        raise InputError(f"index {redact(db)} does not exist; create it with 'clipforge index' first")
    app = create_app(lambda: _load_model(model, device, threads, max_patches), _index_loader(db), settings)
    typer.echo(f"serving {model} on http://{host}:{port}/ (docs at /docs)", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=drain,
        access_log=log_level == "debug",
        http=protocol_class(read_timeout),
        timeout_keep_alive=keep_alive,
    )


def _load_model(model: str, device: str, threads: int | None, max_patches: int | None = None):
    """In the server's loader thread: a hub id or checkpoint is exported once into the cache (the resolver),
    an exported or built folder is used as it is; ``max_patches``: a NaFlex model's default budget."""
    return open_model(model, device=device, threads=threads, show_progress=False, max_patches=max_patches)


def _index_loader(db: str | None):
    """``model -> Index`` opening ``db`` with the served model (run once the model has loaded), or None."""
    if not db:
        return None

    def load(model):
        return Index(db, model=model)

    return load


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
