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


def protocol_class(read_timeout: float) -> type[asyncio.Protocol]:
    """The protocol uvicorn would pick ("auto": httptools when installed, else h11) with the header deadline."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base

        class Timed(_HeaderDeadline, base):
            def on_headers_complete(self) -> None:
                self._headers_arrived()
                super().on_headers_complete()
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

        class Timed(_HeaderDeadline, base):
            def handle_events(self) -> None:
                super().handle_events()
                if self.cycle is not None and not self.cycle.response_complete:
                    self._headers_arrived()

    Timed.read_timeout = read_timeout
    Timed.__name__ = Timed.__qualname__ = f"HeaderDeadline{base.__name__}"
    return Timed
