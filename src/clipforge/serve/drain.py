"""Requests cut by the shutdown drain deadline: on SIGTERM uvicorn waits ``--drain`` seconds for in-flight
requests, then cancels their tasks, which it would answer with a plain-text 500 and a traceback per request.
Here such a request is answered 503 in the API's JSON error shape, with one log line."""

from __future__ import annotations

import asyncio
import json
import logging

from clipforge.serve.errors import error_body

log = logging.getLogger("clipforge.serve")

MESSAGE = "the server is shutting down and this request ran past its drain time; retry"


class DrainMiddleware:
    """Turns the cancellation of a request's task (only uvicorn's drain deadline cancels one) into a 503."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = [False]

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                started[0] = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            log.warning("%s %s cut by the drain deadline: answered 503", scope["method"], scope["path"])
            if not started[0]:
                await _send_503(send)


async def _send_503(send) -> None:
    body = json.dumps(error_body(503, None, MESSAGE)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
