"""ASGI middleware: request metrics (endpoint = the matched route's template, so ids do not explode the label
set) and the body-size limit (a declared Content-Length over the limit is refused before reading; a body that
streams past it fails when it crosses the limit)."""

from __future__ import annotations

import json
import time

from clipforge.serve.errors import ApiError, error_body
from clipforge.serve.metrics import Metrics


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


class BodyLimitMiddleware:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await _send_413(send, f"the body is {declared.decode(errors='replace')} bytes; "
                                         f"the limit is {self.max_bytes}")
        seen = [0]

        async def limited_receive():
            message = await receive()
            seen[0] += len(message.get("body", b""))
            if seen[0] > self.max_bytes:
                raise ApiError(413, "body", f"the body is over the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


async def _send_413(send, message: str) -> None:
    body = json.dumps(error_body(413, "body", message)).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
