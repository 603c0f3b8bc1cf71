"""`python -m inference_service.jobs.worker`: runs queued jobs (same image and settings as the service).

The worker loads the live models as the service does, then loops: reclaim entries idle past the visibility
timeout (`XAUTOCLAIM`: their worker died or stalled), read new ones (`XREADGROUP ... >`), and run up to
`jobs_worker_concurrency` jobs at once as tasks on one event loop, so their rows meet in the models'
batchers and run as shared batches. Each claim counts an attempt first (a job that kills its worker is
counted too); past `jobs_max_attempts` the job goes to the dead-letter stream. The result is stored and the
entry acked in one script. While a job runs, its entry's idle time is reset every third of the visibility
timeout, so a long job on a live worker is not taken over.

It serves `/v2/health/live`, `/v2/health/ready` (every model loaded and warm, as the service) and
`/metrics` on `INFERENCE_PORT`, nothing else; a jobs Redis outage shows as a warning per retry, not as
unreadiness (restarting the worker would not help). SIGTERM stops reading, lets running jobs finish within
`INFERENCE_SHUTDOWN_DRAIN_SECONDS`; what is left stays pending and another worker reclaims it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from functools import partial

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.exceptions import OutOfMemoryError, RedisError

from inference_service import __version__
from inference_service.errors import InferenceError
from inference_service.jobs.store import Claimed, JobStore, connect
from inference_service.logs import REQUEST_ID, configure_logging
from inference_service.metrics import Metrics
from inference_service.protocol import encode_v2, parse_v2
from inference_service.repository import discover
from inference_service.rest import health
from inference_service.rest import metrics as metrics_route
from inference_service.settings import Settings
from inference_service.state import ServiceState

log = logging.getLogger("inference.jobs.worker")

JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        outcomes = Counter(
            "inference_jobs_total",
            "Job deliveries by outcome: done, retry (failed, left for a later attempt), dead_lettered, "
            "already_finished (a reclaimed copy of a finished job)",
            ["outcome"],
            registry=registry,
        )
        self.done = outcomes.labels("done")
        self.retry = outcomes.labels("retry")
        self.dead = outcomes.labels("dead_lettered")
        self.finished = outcomes.labels("already_finished")
        self.reclaimed = Counter(
            "inference_jobs_reclaimed_total",
            "Entries taken over after the visibility timeout",
            registry=registry,
        )
        self.queued = Gauge(
            "inference_jobs_stream_entries", "Jobs queued or running (XLEN of the stream)", registry=registry
        )
        self.dead_entries = Gauge(
            "inference_jobs_dead_letter_entries", "Entries in the dead-letter stream", registry=registry
        )
        self.running = Gauge("inference_jobs_running", "Jobs this worker is running", registry=registry)
        self.latency = Histogram(
            "inference_job_duration_seconds",
            "Submit to stored result, per job",
            buckets=JOB_BUCKETS,
            registry=registry,
        )


class Worker:
    def __init__(
        self, *, state: ServiceState, store: JobStore, consumer: str, registry: CollectorRegistry
    ) -> None:
        s = state.settings
        self.state = state
        self.store = store
        self.consumer = consumer
        self.concurrency = s.jobs_worker_concurrency
        self.visibility_ms = int(s.jobs_visibility_timeout_seconds * 1000)
        self.metrics = WorkerMetrics(registry)
        self.max_result_bytes = s.jobs_max_result_bytes
        self.running: dict[str, asyncio.Task[None]] = {}
        # Jobs to run alone (lost with their worker too often beside others): while any waits or runs, no
        # new job starts; `alone` lets them run one at a time.
        self.isolating: set[str] = set()
        self.alone = asyncio.Lock()
        self.metrics.running.set_function(lambda: len(self.running))
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        await self.store.ensure_group()
        keeper = asyncio.get_running_loop().create_task(self._keep_alive())
        tick = self.visibility_ms / 2000
        last_reclaim = 0.0
        cursor = "0-0"
        # After a failed loop (e.g. a read whose reply was lost), take back what was delivered to us.
        recovered = await self.store.own_pending(self.consumer, self.concurrency)
        self._start([e for e in recovered if e[0] not in self.running])
        try:
            while not self.stopping.is_set():
                free = 0 if self.isolating else self.concurrency - len(self.running)
                if free <= 0:
                    await asyncio.wait(
                        list(self.running.values()), timeout=tick, return_when="FIRST_COMPLETED"
                    )
                    continue
                entries: list[tuple[str, str]] = []
                now = time.monotonic()
                if now - last_reclaim >= tick:
                    last_reclaim = now
                    # A cursor over the pending list: one scan reads about 10 x `free` entries, so with many
                    # live jobs pending, idle ones further down are still reached on later ticks.
                    cursor, found = await self.store.reclaim(self.consumer, self.visibility_ms, free, cursor)
                    reclaimed = [e for e in found if e[0] not in self.running]
                    self.metrics.reclaimed.inc(len(reclaimed))
                    entries += reclaimed
                    # Delivered to us but not running: a read whose reply was lost. Ours: no need to wait.
                    mine = await self.store.own_pending(self.consumer, self.concurrency)
                    entries += [e for e in mine if e[0] not in self.running and e not in entries]
                    queued, dead = await self.store.depth()
                    self.metrics.queued.set(queued)
                    self.metrics.dead_entries.set(dead)
                if len(entries) < free:
                    block = 1 if entries or self.running else min(1000, max(1, int(tick * 1000)))
                    entries += await self.store.read_new(self.consumer, free - len(entries), block)
                self._start(entries)
                if not entries and self.running:
                    await asyncio.sleep(0.001)  # let the running jobs make progress before asking again
        finally:
            keeper.cancel()

    def _start(self, entries: list[tuple[str, str]]) -> None:
        for entry_id, job_id in entries:
            task = asyncio.get_running_loop().create_task(self._one(entry_id, job_id))
            self.running[entry_id] = task
            task.add_done_callback(partial(self._forget, entry_id))

    def _forget(self, entry_id: str, task: asyncio.Task[None]) -> None:
        self.running.pop(entry_id, None)
        if not task.cancelled() and (error := task.exception()) is not None:  # retrieved and logged
            log.error("job entry %s: %s: %s; it stays pending", entry_id, type(error).__name__, error)

    async def drain(self, timeout: float) -> None:
        self.stopping.set()
        if self.running:
            await asyncio.wait(list(self.running.values()), timeout=timeout)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.visibility_ms / 3000)
            try:
                await self.store.keep_alive(self.consumer, list(self.running))
            except Exception:
                log.warning("could not extend the visibility of running jobs", exc_info=True)

    async def _one(self, entry_id: str, job_id: str) -> None:
        try:
            claimed = await self.store.claim(entry_id, job_id, self.consumer)
        except Exception:
            log.exception("claiming job %s failed; it stays pending", job_id)
            return
        if isinstance(claimed, str):
            if claimed.startswith("dead"):
                self.metrics.dead.inc()
                log.error("job %s moved to the dead-letter stream: %s", job_id, claimed[6:])
            else:
                self.metrics.finished.inc()
            return
        REQUEST_ID.set(claimed.request_id)  # this task's lines carry the submitting request's id
        if claimed.isolate:
            await self._run_alone(entry_id, claimed)
        else:
            await self._run(claimed)

    async def _run_alone(self, entry_id: str, claimed: Claimed) -> None:
        """Runs a job that was lost with its worker beside other jobs too often, with nothing else running:
        if it brings the worker down now, the next claim dead-letters it with that reason."""
        self.isolating.add(entry_id)
        try:
            async with self.alone:
                # Looked at again every 50 ms: a job still claiming may turn out to be one to isolate too.
                while others := [t for e, t in self.running.items() if e not in self.isolating]:
                    await asyncio.wait(others, timeout=0.05)
                log.warning("job %s was lost with its worker beside others; running it alone", claimed.job_id)
                await self.store.running_alone(claimed, self.consumer)
                await self._run(claimed)
        finally:
            self.isolating.discard(entry_id)

    async def _run(self, claimed: Claimed) -> None:
        job_id = claimed.job_id
        try:
            result = await self._compute(claimed)
        except Exception as exc:
            reason = exc.message if isinstance(exc, InferenceError) else f"{type(exc).__name__}: {exc}"
            log.warning("job %s attempt %d failed: %s", job_id, claimed.attempts, reason)
            self.metrics.retry.inc()
            with contextlib.suppress(Exception):
                await self.store.retry_later(claimed, reason)
            return
        if len(result) > self.max_result_bytes:
            await self._fail(
                claimed, f"the result of {len(result)} bytes exceeds the limit of {self.max_result_bytes}"
            )
            return
        try:
            stored = await self.store.complete(claimed, result)
        except OutOfMemoryError as exc:
            # No retry can mend it while the store is full: the job fails now, with the true reason.
            await self._fail(
                claimed, f"the job store is out of memory for a result of {len(result)} bytes ({exc})"
            )
            return
        except (
            RedisError,
            OSError,
        ) as exc:  # unreachable: the entry stays pending, reclaimed after the timeout
            log.warning("storing the result of job %s failed (%s); it will be retried", job_id, exc)
            return
        if stored:
            self.metrics.done.inc()
            created = 0.0
            with contextlib.suppress(RedisError, OSError):
                created = await self._created(job_id)
            if created:
                self.metrics.latency.observe(max(0.0, time.time() - created))
        else:
            self.metrics.finished.inc()

    async def _fail(self, claimed: Claimed, reason: str) -> None:
        log.error("job %s failed: %s", claimed.job_id, reason)
        self.metrics.dead.inc()
        try:
            await self.store.fail(claimed, reason)
        except (RedisError, OSError) as exc:
            log.warning(
                "recording the failure of job %s failed (%s); it will be retried", claimed.job_id, exc
            )

    async def _compute(self, job: Claimed) -> bytes:
        runtime = self.state.runtime(job.model, job.version)
        parsed = parse_v2(runtime.model, job.body, job.binary)
        content, _ = encode_v2(runtime.model, parsed, await runtime.infer(parsed.rows))
        return content

    async def _created(self, job_id: str) -> float:
        value = await self.store.client.hget(self.store.job_key(job_id), "created")
        return float(value) if value else 0.0


def create_worker_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging()
    if not settings.jobs_redis_url:
        raise ValueError("the worker needs INFERENCE_JOBS_REDIS_URL (the jobs Redis)")
    entries = discover(settings.model_repository, settings.model_refs)
    metrics = Metrics()
    state = ServiceState(settings=settings, entries=entries, metrics=metrics)
    store = JobStore(
        connect(
            settings.jobs_redis_url,
            settings.jobs_redis_password(),
            settings.jobs_redis_timeout_ms / 1000 + 1.5,  # above XREADGROUP's longest BLOCK (1 s)
        ),
        prefix=settings.jobs_prefix,
        result_ttl_seconds=settings.jobs_result_ttl_seconds,
        max_attempts=settings.jobs_max_attempts,
    )
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    worker = Worker(state=state, store=store, consumer=consumer, registry=metrics.registry)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start_loading()
        loop = asyncio.get_running_loop()

        async def consume() -> None:
            while not state.ready:
                if state.load_failed:
                    return
                await asyncio.sleep(0.05)
            log.info("worker %s consuming %s (group %s)", consumer, store.stream, store.group)
            while not worker.stopping.is_set():
                try:
                    await worker.run()
                except (RedisError, OSError) as exc:
                    log.warning("the jobs Redis failed (%s: %s); retrying in 1 s", type(exc).__name__, exc)
                    await asyncio.sleep(1)
                except Exception:
                    log.exception("the job loop failed; restarting it in 1 s")
                    await asyncio.sleep(1)

        task = loop.create_task(consume())
        try:
            yield
        finally:
            await worker.drain(settings.shutdown_drain_seconds)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await state.shutdown()
            await store.client.aclose()

    app = FastAPI(title="Inference jobs worker", version=__version__, lifespan=lifespan, openapi_url=None)
    app.state.inference = state
    app.state.worker = worker
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    return app


def main() -> None:
    settings = Settings()
    sys.setswitchinterval(0.0005)
    uvicorn.run(
        create_worker_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(settings.shutdown_drain_seconds),
    )


if __name__ == "__main__":
    main()
