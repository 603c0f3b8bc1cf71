"""The JSON access log: one line per request, buffered and written in batches.

A write (and flush) per request was a system call on every request. Lines are collected in memory and
written when `max_pending` bytes are waiting or `max_delay` seconds after the first waiting line, whichever
comes first; and on close (the app's lifespan shutdown, after in-flight requests have drained) and at
interpreter exit. So no line is lost on a graceful shutdown (SIGTERM); a SIGKILL loses at most `max_delay`.
"""

from __future__ import annotations

import asyncio
import atexit
import weakref
from typing import BinaryIO

_open_logs: weakref.WeakSet[AccessLog] = weakref.WeakSet()


class AccessLog:
    def __init__(self, stream: BinaryIO, *, max_pending: int = 64 * 1024, max_delay: float = 0.05) -> None:
        self._stream = stream
        self._max_pending = max_pending
        self._max_delay = max_delay
        self._pending = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        _open_logs.add(self)

    def write(self, line: bytes) -> None:
        """Queues one line (with its newline)."""
        self._pending += line
        if len(self._pending) >= self._max_pending:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on an event loop: nothing would flush later
                self.flush()
                return
            self._timer = loop.call_later(self._max_delay, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        data = bytes(self._pending)
        self._pending.clear()
        try:
            self._stream.write(data)
            self._stream.flush()
        except (OSError, ValueError):  # stdout closed or gone: nothing left to write to
            pass

    @property
    def pending(self) -> int:
        return len(self._pending)


@atexit.register
def _flush_all() -> None:
    for log in list(_open_logs):
        log.flush()
