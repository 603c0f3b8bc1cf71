"""Dynamic batching: rows from concurrent requests run through the model in one onnxruntime call.

One batch per model runs at a time, on the model's own worker thread (off the event loop). While it runs, new
requests queue; when it finishes, everything queued (up to max_batch_size rows) goes as the next batch. So at
low load a request runs at once, and under load batches grow by themselves. `max_wait` adds an optional delay
to gather fuller batches when the model is idle (trading latency for throughput).

`inline=True` runs the batch on the event loop thread instead: for a model whose call costs a few
microseconds, handing a batch to a thread and back (two wake-ups, ~100+ us on a small VM) costs far more than
the inference itself, and blocking the loop for the call is cheaper than the handoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

RowT = TypeVar("RowT")
ResultT = TypeVar("ResultT")

log = logging.getLogger("inference.batching")


class DynamicBatcher(Generic[RowT, ResultT]):
    """Groups rows submitted concurrently into batches for `run` (a blocking function of a list of rows)."""

    def __init__(
        self,
        *,
        name: str,
        run: Callable[[Sequence[RowT]], list[ResultT]],
        max_batch_size: int,
        max_wait_seconds: float,
        on_batch: Callable[[int, float], None] | None = None,
        inline: bool = False,
    ) -> None:
        self.inline = inline
        self._run = run
        self._max_batch_size = max_batch_size
        self._max_wait = max_wait_seconds
        self._on_batch = on_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")
        self._pending: deque[tuple[Sequence[RowT], asyncio.Future[list[ResultT]]]] = deque()
        self._pending_rows = 0
        self._running = False
        self._scheduled: asyncio.Handle | asyncio.TimerHandle | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, rows: Sequence[RowT]) -> asyncio.Future[list[ResultT]]:
        """A future of the results for `rows`, in order, set once the batch that holds them has run (a future,
        not a coroutine: one coroutine frame less on every request's way back)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[ResultT]] = loop.create_future()
        self._pending.append((rows, future))
        self._pending_rows += len(rows)
        self._idle.clear()
        self._schedule(loop)
        return future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._running or not self._pending:
            return
        if self._pending_rows >= self._max_batch_size or self._max_wait <= 0:
            if self._scheduled is None or isinstance(self._scheduled, asyncio.TimerHandle):
                if self._scheduled is not None:
                    self._scheduled.cancel()
                self._scheduled = loop.call_soon(self._flush, loop)
        elif self._scheduled is None:
            self._scheduled = loop.call_later(self._max_wait, self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = None
        if self._running or not self._pending:
            return
        taken: list[tuple[Sequence[RowT], asyncio.Future[list[ResultT]]]] = []
        rows: list[RowT] = []
        while self._pending and (not rows or len(rows) + len(self._pending[0][0]) <= self._max_batch_size):
            item = self._pending.popleft()
            self._pending_rows -= len(item[0])
            if item[1].cancelled():
                continue
            taken.append(item)
            rows.extend(item[0])
        if not taken:
            self._after(loop)
            return
        self._running = True
        started = loop.time()
        if self.inline:
            finished: asyncio.Future[list[ResultT]] = loop.create_future()
            try:
                finished.set_result(self._run(rows))
            except Exception as exc:
                finished.set_exception(exc)
            self._complete(loop, finished, taken, started)
            return
        done = loop.run_in_executor(self._executor, self._run, rows)
        done.add_done_callback(lambda f: self._complete(loop, f, taken, started))

    def _complete(
        self,
        loop: asyncio.AbstractEventLoop,
        done: asyncio.Future[list[ResultT]],
        taken: list[tuple[Sequence[RowT], asyncio.Future[list[ResultT]]]],
        started: float,
    ) -> None:
        self._running = False
        error = done.exception()
        if error is None:
            results = done.result()
            if self._on_batch is not None:
                self._on_batch(len(results), loop.time() - started)
            offset = 0
            for rows, future in taken:
                if not future.done():
                    future.set_result(results[offset : offset + len(rows)])
                offset += len(rows)
        else:
            log.error("batch of %d requests failed: %r", len(taken), error)
            for _, future in taken:
                if not future.done():
                    future.set_exception(error)
        self._after(loop)

    def _after(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pending:
            # Whatever queued while the last batch ran has waited long enough: run it now.
            if self._scheduled is not None:
                self._scheduled.cancel()
            self._scheduled = loop.call_soon(self._flush, loop)
        else:
            self._idle.set()

    async def drain(self) -> None:
        """Waits until every submitted row has run (graceful shutdown)."""
        await self._idle.wait()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
