"""Connection limits at the HTTP protocol: uvicorn's httptools protocol with what it lacks.

uvicorn closes an idle keep-alive connection (`timeout_keep_alive`), but a connection that sends nothing, or
sends its headers slowly, stays open for ever, and the headers it sends are kept without a size limit (20,200
silent sockets reached the process's file descriptor limit and failed its health probes; one connection
streaming 100 MB of header lines added 97 MB of memory). This protocol:

- closes a connection whose request headers are not complete `header_timeout_seconds` after it opened, or
  after its previous response (slow or silent clients), logging one line per close;
- answers 431 and closes when a request's headers pass `max_header_bytes`: counted as they arrive (headers
  streamed without end) and as they are parsed (a whole request in one read, which completes its headers
  before the arrival count can see them: a 40 KiB header on loopback, found by bench/soak_bench.py);
- records how many connections are open in the request scope (`CONNECTIONS_KEY`), which the request
  middleware compares with `max_connections` (it answers 503 with Retry-After past it, except to health
  probes: they must keep answering however many connections clients hold open).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from inference_service.settings import Settings

log = logging.getLogger("inference.connections")
CONNECTIONS_KEY = "inference.connections"
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)


class _HeadersTooLarge(Exception):
    """Raised from the parser's header callback past max_header_bytes."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a header deadline, a header size limit and the open-connection count."""

    settings: Settings | None = None  # read from the environment on first use (each worker process)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cls = type(self)
        if cls.settings is None:
            cls.settings = Settings()
        self._timeout = cls.settings.header_timeout_seconds
        self._max_header = cls.settings.max_header_bytes
        self._header_bytes = 0
        self._parsed_header_bytes = 0
        self._reading_headers = True
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        self._stop_deadline()
        self._reading_headers = True
        self._header_bytes = 0
        self._deadline = self.loop.call_later(self._timeout, self._too_slow)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self._reading_headers and not self.transport.is_closing():
            log.warning("closed %s: no complete request headers within %.0f s", self._peer(), self._timeout)
            self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "?"

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self._max_header:
                self._refuse_headers()

    def _refuse_headers(self) -> None:
        body = b'{"error":"request headers exceed %d bytes"}' % self._max_header
        self.transport.write(_431 % (len(body), body))
        log.warning("closed %s: request headers over %d bytes (431)", self._peer(), self._max_header)
        self._stop_deadline()
        self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._parsed_header_bytes += len(name) + len(value) + 4
        if self._parsed_header_bytes > self._max_header:
            # stops the parser before the request reaches the app; uvicorn answers a parser error with
            # send_400_response, which this protocol turns into the 431
            raise _HeadersTooLarge

    def send_400_response(self, msg: str) -> None:
        if self._parsed_header_bytes > self._max_header:
            self._refuse_headers()
        else:
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed_header_bytes = 0
        if not self._reading_headers:  # the next request on a kept-alive connection: a fresh deadline
            self._start_deadline()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._stop_deadline()
        self.scope[CONNECTIONS_KEY] = len(self.connections)  # type: ignore[literal-required]
        super().on_headers_complete()
