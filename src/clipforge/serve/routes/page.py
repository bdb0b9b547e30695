"""The web page at ``/`` and its files at ``/static/`` (package data; no CDN, no build step). Public: the page
holds no data, and asks for the API key when the server has one."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from clipforge.serve.deps import require_key, service
from clipforge.serve.schemas import Info

STATIC = resources.files("clipforge.serve") / "static"

router = APIRouter(tags=["page"])


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(str(STATIC / "index.html"), headers={"Cache-Control": "no-cache"})


@router.get("/v1/info", response_model=Info, dependencies=[Depends(require_key)])
def info(request: Request) -> Info:
    svc = service(request)
    svc.require_ready()
    s = svc.settings
    limits = {
        "max_images": s.max_images,
        "max_labels": s.max_labels,
        "max_body_bytes": s.max_body_bytes,
        "max_k": s.max_k,
        "max_text_chars": s.max_text_chars,
    }
    return Info(
        model=svc.model_name,
        family=svc.model.manifest.family,
        embed_dim=svc.model.manifest.embed_dim,
        search=svc.index is not None,
        limits=limits,
    )
