"""``/healthz`` (the process answers), ``/readyz`` (model loaded and the probe passed), ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from clipforge.serve.deps import require_key, service

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    svc = service(request)
    if svc.ready:  # the execution providers actually in use: a silent fallback to CPU shows here
        providers = svc.model.image_encoder.session.get_providers()
        return JSONResponse({"status": "ready", "model": svc.model_name, "providers": providers})
    status = "failed" if svc.error else "loading"
    return JSONResponse({"status": status, "error": svc.error}, 503)


@router.get("/metrics", dependencies=[Depends(require_key)], response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(service(request).metrics.render(), media_type="text/plain; version=0.0.4")
