"""uvicorn's HTTP protocol with a deadline for a request's headers: a connection that opens (or stays open after
a response) and does not deliver complete headers within ``read_timeout`` seconds is closed. uvicorn times out
only idle kept-alive connections, and its timer stops at the first byte, so a client that never sends, or
sends a header line a minute, would hold the connection forever. Bodies are bounded by ``BodyLimitMiddleware``."""

from __future__ import annotations

import asyncio


class _HeaderDeadline:
    read_timeout: float = 30.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        self._arm_header_deadline()  # first: a pipelined request's headers, handled inside, disarm it
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._awaiting_headers = True
        self._header_timer = self.loop.call_later(self.read_timeout, self._header_deadline_passed)

    def _cancel_header_deadline(self) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_arrived(self) -> None:
        self._awaiting_headers = False
        self._cancel_header_deadline()

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self.transport.is_closing():
            self.transport.close()


def protocol_class(read_timeout: float, parser: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's protocol for ``parser`` ("httptools", "h11", or "auto": httptools when installed, as uvicorn
    picks) with the header deadline."""
    if parser == "auto":
        try:
            import httptools  # noqa: F401

            parser = "httptools"
        except ImportError:
            parser = "h11"
    timed = _timed_httptools() if parser == "httptools" else _timed_h11()
    return type(timed.__name__, (timed,), {"read_timeout": read_timeout})


def _timed_httptools() -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderDeadlineHttpToolsProtocol(_HeaderDeadline, HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            self._headers_arrived()
            super().on_headers_complete()

    return HeaderDeadlineHttpToolsProtocol


def _timed_h11() -> type:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadlineH11Protocol(_HeaderDeadline, H11Protocol):
        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._headers_arrived()

    return HeaderDeadlineH11Protocol
