"""Dependencies shared by the routers: the service, the API key check, JSON-only bodies, readiness."""

from __future__ import annotations

import secrets

from fastapi import Request

from clipforge.serve.errors import ApiError
from clipforge.serve.service import Service


def service(request: Request) -> Service:
    return request.app.state.service


def require_key(request: Request) -> None:
    """With an API key configured, ``Authorization: Bearer <key>`` must match it (``ApiKeyMiddleware`` checks
    first, before the body is read; this keeps routes safe in an app built without it)."""
    key = request.app.state.service.settings.api_key
    problem = key_problem(dict(request.headers.raw).get(b"authorization"), key) if key else None
    if problem:
        raise ApiError(401, "Authorization", problem, {"WWW-Authenticate": "Bearer"})


def key_problem(header: bytes | None, key: str) -> str | None:
    """Why the raw ``Authorization`` header does not carry ``key`` (compared as bytes, in constant time), or
    None when it does. The message never echoes what was sent."""
    if not header:
        return "missing API key; send the header 'Authorization: Bearer <key>'"
    scheme, _, token = header.partition(b" ")
    if scheme.lower() != b"bearer" or not secrets.compare_digest(token.strip(), key.encode()):
        return "wrong API key or scheme; send 'Authorization: Bearer <key>'"
    return None


def require_json(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "Content-Type", f"expected application/json, got {kind or 'no content type'}")


def ready_service(request: Request) -> Service:
    svc = service(request)
    svc.require_ready()
    return svc
