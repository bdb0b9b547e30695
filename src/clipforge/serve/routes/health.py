"""``/healthz`` (the process answers), ``/readyz`` (model loaded, the probe passed and the index readable),
``/metrics``. Errors shown here need no key, so database locations in them are redacted."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from clipforge._dblocation import redact
from clipforge.serve.deps import require_key, service

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    svc = service(request)
    problem = svc.index.problem() if svc.ready and svc.index is not None else None
    if problem:  # e.g. the database file was deleted while serving
        return JSONResponse({"status": "index unavailable", "error": redact(problem)}, 503)
    if svc.ready:  # the execution providers actually in use: a silent fallback to CPU shows here
        providers = svc.model.image_encoder.session.get_providers()
        return JSONResponse({"status": "ready", "model": svc.model_name, "providers": providers})
    status = "failed" if svc.error else "loading"
    return JSONResponse({"status": status, "error": redact(svc.error) if svc.error else None}, 503)


@router.get("/metrics", dependencies=[Depends(require_key)], response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(service(request).metrics.render(), media_type="text/plain; version=0.0.4")
