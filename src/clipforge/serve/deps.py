"""Dependencies shared by the routers: the service, the API key check, JSON-only bodies, readiness."""

from __future__ import annotations

import secrets

from fastapi import Request

from clipforge.serve.errors import ApiError
from clipforge.serve.service import Service


def service(request: Request) -> Service:
    return request.app.state.service


def require_key(request: Request) -> None:
    """With an API key configured, ``Authorization: Bearer <key>`` must match it."""
    key = request.app.state.service.settings.api_key
    if not key:
        return
    header = request.headers.get("authorization")
    challenge = {"WWW-Authenticate": "Bearer"}
    if not header:
        raise ApiError(401, "Authorization", "missing API key; send the header 'Authorization: Bearer <key>'",
                       challenge)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), key.encode()):
        raise ApiError(401, "Authorization", "wrong API key or scheme; send 'Authorization: Bearer <key>'",
                       challenge)


def require_json(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "Content-Type", f"expected application/json, got {kind or 'no content type'}")


def ready_service(request: Request) -> Service:
    svc = service(request)
    svc.require_ready()
    return svc
