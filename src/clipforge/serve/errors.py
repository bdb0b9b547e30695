"""HTTP errors as JSON that names the field and the problem: ``{"error": {"status", "field", "message"}}``.

Every handler here answers 4xx for what the client sent; only a bug in clipforge gives a 500, and even that
is JSON and leaves the server serving.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from clipforge.errors import InputError
from clipforge.index.base import ModelSwitched

log = logging.getLogger("clipforge.serve")


class ApiError(Exception):
    """A request problem: HTTP ``status``, the offending ``field`` (``input[2]``, ``labels``, ``Authorization``)
    and a message that says what came in and what is expected."""

    def __init__(self, status: int, field: str | None, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.field, self.message, self.headers = status, field, message, headers


def error_body(status: int, field: str | None, message: str, **extra) -> dict:
    return {"error": {"status": status, "field": field, "message": message, **extra}}


def field_name(loc) -> str:
    """pydantic's ``("body", "input", 0)`` -> ``input[0]``."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc.status, exc.field, exc.message), exc.status, headers=exc.headers)


def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"field": field_name(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in exc.errors()]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return JSONResponse(error_body(400, "body", "the body is not valid JSON; send a JSON object"), 400)
    field = field_name(first_loc([tuple(e.get("loc", ())) for e in exc.errors()])) if errors else "body"
    return JSONResponse(error_body(422, field, first["message"], errors=errors), 422)


def first_loc(locs: list[tuple]) -> tuple:
    """The first error's location; when several errors concern the same field (one per member of a union
    such as ``str | list[str]``: ``input.str``, ``input.list[str]``), their common part (``input``)."""
    group = [loc for loc in locs if loc[:2] == locs[0][:2]]
    common = []
    for parts in zip(*group):
        if any(p != parts[0] for p in parts):
            break
        common.append(parts[0])
    return tuple(common)


def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    field = {404: "path", 405: "path", 400: "body", 408: "body", 413: "body"}.get(exc.status_code)
    return JSONResponse(
        error_body(exc.status_code, field, str(exc.detail)), exc.status_code, headers=getattr(exc, "headers", None)
    )


def _input(_: Request, exc: InputError) -> JSONResponse:
    return JSONResponse(error_body(422, None, str(exc)), 422)


def _switched(_: Request, exc: ModelSwitched) -> JSONResponse:
    """The index completed a model switch after the server loaded its model: the server must be restarted."""
    return JSONResponse(error_body(409, None, str(exc)), 409)


def _disconnect(_: Request, exc: ClientDisconnect) -> JSONResponse:
    """The client hung up with its body half sent: nobody reads this answer, and it is no server error."""
    return JSONResponse(error_body(400, "body", "the client disconnected before sending the whole body"), 400)


def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error")
    return JSONResponse(error_body(500, None, f"internal error ({type(exc).__name__}); see the server log"), 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(InputError, _input)
    app.add_exception_handler(ModelSwitched, _switched)
    app.add_exception_handler(ClientDisconnect, _disconnect)
    app.add_exception_handler(Exception, _unexpected)
