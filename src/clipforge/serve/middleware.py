"""ASGI middleware, outermost first: request metrics (endpoint = the matched route's template, so ids do not
explode the label set), HEAD as GET without the body, the API key (before the body is read), the body-size and
body-time limits, and the JSON guard (depth, UTF-8, surrogates) before any route parses a body."""

from __future__ import annotations

import asyncio
import json
import time

from starlette.exceptions import HTTPException as StarletteHTTPException

from clipforge.serve.deps import key_problem
from clipforge.serve.errors import error_body
from clipforge.serve.prometheus import Metrics
from clipforge.serve.validation import json_body_problem


class MetricsMiddleware:
    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        self.metrics.in_flight += 1
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight -= 1
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(endpoint, scope["method"], status[0], time.perf_counter() - start)


class HeadMiddleware:
    """``HEAD`` answers as ``GET`` without the body (FastAPI routes declared with ``GET`` refuse ``HEAD`` with
    405; HTTP/1.1 says every GET resource answers HEAD)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)
        inner = {**scope, "method": "GET"}

        async def headers_only(message):
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        try:
            await self.app(inner, receive, headers_only)
        finally:
            if "route" in inner:  # for the metrics' endpoint label
                scope["route"] = inner["route"]


class ApiKeyMiddleware:
    """With a key set, every path but the health checks and the page (``/``, ``/static/``) needs
    ``Authorization: Bearer <key>`` - checked before the body is read, so a client without the key cannot make
    the server read or parse anything. ``/docs``, ``/redoc`` and ``/openapi.json`` need it too."""

    PUBLIC = frozenset({"/", "/healthz", "/readyz"})

    def __init__(self, app, key: str | None):
        self.app, self.key = app, key

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.key or self._public(scope["path"]):
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers") or []).get(b"authorization")
        problem = key_problem(header, self.key)
        if problem:
            return await send_error(send, 401, "Authorization", problem, {b"www-authenticate": b"Bearer"})
        await self.app(scope, receive, send)

    def _public(self, path: str) -> bool:
        return path in self.PUBLIC or path.startswith("/static/")


class BodyLimitMiddleware:
    """A declared Content-Length over ``max_bytes`` is refused (413) before reading; a body that streams past
    the limit (chunked) gets 413 when it crosses it; a body still arriving ``timeout_s`` after the request
    started gets 408 and the connection is closed (a client trickling bytes cannot hold a worker forever)."""

    def __init__(self, app, max_bytes: int, timeout_s: float):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await send_error(
                send,
                413,
                "body",
                f"the body is {declared[:32].decode(errors='replace')} bytes; the limit is {self.max_bytes}",
            )
        body = _BodyReader(receive, self.max_bytes, self.timeout_s)
        started = [False]

        async def tracked_send(message):
            started[0] = started[0] or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body.receive, tracked_send)
        except StarletteHTTPException as exc:  # raised by the reader outside FastAPI's handlers
            if started[0] or exc.status_code not in (408, 413):
                raise
            await send_error(send, exc.status_code, "body", str(exc.detail))


class _BodyReader:
    def __init__(self, receive, max_bytes: int, timeout_s: float):
        self._receive, self.max_bytes, self.timeout_s = receive, max_bytes, timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.seen, self.done = 0, False

    async def receive(self):
        if self.done:  # after the body: disconnect notices, no deadline
            return await self._receive()
        try:
            message = await asyncio.wait_for(self._receive(), max(self.deadline - time.monotonic(), 0.001))
        except TimeoutError:
            raise StarletteHTTPException(
                408,
                f"the body did not arrive within {self.timeout_s:g} s; send it faster or in a smaller request",
                _CLOSE,
            ) from None
        if message["type"] != "http.request":
            self.done = True
            return message
        self.seen += len(message.get("body", b""))
        if self.seen > self.max_bytes:
            raise StarletteHTTPException(413, f"the body is over the limit of {self.max_bytes} bytes", _CLOSE)
        self.done = not message.get("more_body", False)
        return message


class JsonGuardMiddleware:
    """A JSON body is read whole and checked (UTF-8, nesting depth, lone surrogate escapes; see
    ``validation.json_body_problem``) before any route parses it; a bad one gets 400 naming the problem."""

    THREAD_BYTES = 1 << 20  # larger bodies are checked off the event loop

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _is_json(scope):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        check = json_body_problem
        problem = await asyncio.to_thread(check, raw) if len(raw) > self.THREAD_BYTES else check(raw)
        if problem:
            return await send_error(send, 400, "body", problem)
        await self.app(scope, _replay(raw, receive), send)


def _replay(raw: bytes, receive):
    sent = [False]

    async def replay():
        if sent[0]:
            return await receive()
        sent[0] = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return replay


def _is_json(scope) -> bool:
    kind = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
    return kind == b"application/json" or (kind.startswith(b"application/") and kind.endswith(b"+json"))


_CLOSE = {"Connection": "close"}


async def send_error(send, status: int, field: str, message: str, headers: dict | None = None) -> None:
    """An error answer in the JSON error shape, sent from middleware (outside FastAPI's handlers); the
    connection is closed, since the request body may be unread."""
    body = json.dumps(error_body(status, field, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(headers or {}).items(),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
