"""The service's runtime state: settings, live model entries, loaded runtimes, readiness, the Redis tier."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable

from inference_service.cache import CircuitBreaker, RedisTier
from inference_service.decoding import Decoder
from inference_service.engine import ModelRuntime
from inference_service.errors import NotFound, Unavailable
from inference_service.metrics import Metrics
from inference_service.repository import ModelEntry, ModelIntegrityError
from inference_service.sessions import load_model
from inference_service.settings import Settings

log = logging.getLogger("inference.state")


class ServiceState:
    def __init__(self, *, settings: Settings, entries: list[ModelEntry], metrics: Metrics) -> None:
        self.settings = settings
        self.entries = {e.name: e for e in entries}
        self.metrics = metrics
        self.runtimes: dict[str, ModelRuntime] = {}
        self.ready = False
        self.draining = False
        self.load_failed = False
        self.decoder = Decoder()  # large JSON bodies, in a helper process started on first use
        self.redis: RedisTier | None = None
        self._load_task: asyncio.Task[None] | None = None
        self._checks: list[asyncio.Task[object]] = []
        #: Called on the event loop with True once ready, False on draining (the gRPC health service).
        self.readiness_hooks: list[Callable[[bool], None]] = []
        #: Awaited (beside the model loads) before the service reports ready: a dependency every request
        #: needs, such as quotas that fail closed (app.serving_handler).
        self.startup_checks: list[Callable[[], Awaitable[object]]] = []

    # Lifecycle

    def start_loading(self) -> None:
        """Loads and warms every model in the background; the server answers health checks meanwhile."""
        self._load_task = asyncio.get_running_loop().create_task(self.load())

    async def load(self) -> None:
        s = self.settings
        checks = [asyncio.ensure_future(check()) for check in self.startup_checks]
        self._checks = checks
        try:
            if s.redis_url:
                self.redis = RedisTier(
                    url=s.redis_url,
                    password=s.redis_password(),
                    timeout_seconds=s.redis_timeout_ms / 1000,
                    ttl_seconds=s.cache_ttl_seconds,
                    breaker=CircuitBreaker(
                        failures=s.redis_breaker_failures, cooldown_seconds=s.redis_breaker_cooldown_seconds
                    ),
                    on_error=lambda operation: self.metrics.cache_errors.labels(operation).inc(),
                )
            for entry in self.entries.values():
                started = time.perf_counter()
                model = await asyncio.to_thread(load_model, entry, s)
                info = await asyncio.to_thread(model.warm_up)
                call_us = info.per_call_seconds * 1e6
                uses_redis = self.redis is not None and call_us > s.redis_min_inference_us
                inline = call_us < s.inline_inference_max_us
                self.runtimes[entry.name] = ModelRuntime(
                    model=model,
                    metrics=self.metrics,
                    local_entries=s.local_cache_entries,
                    redis=self.redis if uses_redis else None,
                    max_batch_size=s.max_batch_size,
                    max_wait_seconds=s.max_batch_wait_ms / 1000,
                    inline=inline,
                )
                seconds = time.perf_counter() - started
                labels = (entry.name, entry.version)
                self.metrics.model_load_seconds.labels(*labels).set(seconds)
                self.metrics.model_call_seconds.labels(*labels).set(info.per_call_seconds)
                self.metrics.model_uses_redis.labels(*labels).set(1 if uses_redis else 0)
                self.metrics.model_inline.labels(*labels).set(1 if inline else 0)
                log.info(
                    "loaded %s:%s in %.2fs (batch-1 call %.1f us, providers %s, redis tier %s, runs %s)",
                    entry.name, entry.version, seconds, call_us, info.providers,
                    "on" if uses_redis else "off", "on the event loop" if inline else "on its model thread",
                )  # fmt: skip
            # Everything allocated so far lives as long as the process: keep it out of the cyclic GC's full
            # collections, which otherwise walk every module and schema object and show up as tail latency.
            gc.collect()
            gc.freeze()
            await asyncio.gather(*checks)
            self.ready = True
            for hook in self.readiness_hooks:
                hook(True)
            log.info("ready: %s", ", ".join(f"{e.name}:{e.version}" for e in self.entries.values()))
        except ModelIntegrityError as exc:  # one line naming the file; a traceback would add nothing
            self.load_failed = True
            self._cancel_checks()
            log.error("model file refused: %s", exc)
        except Exception:
            self.load_failed = True
            self._cancel_checks()
            log.exception("loading the models failed; liveness now reports failure")

    def _cancel_checks(self) -> None:
        for check in self._checks:
            check.cancel()

    async def shutdown(self) -> None:
        """Stops taking new work, lets queued batches finish, closes Redis and the model threads."""
        self.draining = True
        self.ready = False
        for hook in self.readiness_hooks:
            hook(False)
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        self._cancel_checks()
        for runtime in self.runtimes.values():
            await asyncio.wait_for(runtime.batcher.drain(), timeout=self.settings.shutdown_drain_seconds)
            runtime.batcher.close()
        if self.redis is not None:
            await self.redis.close()
        self.decoder.close()

    # Lookups

    def runtime(self, name: str, version: str | None) -> ModelRuntime:
        """The loaded runtime for name (and version, when given); 404 or 503 with what exists."""
        self.entry(name, version)
        runtime = self.runtimes.get(name)
        if runtime is None:
            raise Unavailable(f"model '{name}' is still loading; retry when /v2/health/ready returns 200")
        return runtime

    def model_ready(self, name: str, version: str | None) -> tuple[ModelEntry, bool]:
        """The entry (404 as `entry`) and whether it is loaded and the server is not draining."""
        entry = self.entry(name, version)
        return entry, entry.name in self.runtimes and not self.draining

    def entry(self, name: str, version: str | None) -> ModelEntry:
        """The configured entry for name (and version, when given); 404 naming what is served."""
        entry = self.entries.get(name)
        if entry is None:
            raise NotFound(f"unknown model '{name}'; served models: {sorted(self.entries)}")
        if version is not None and version != entry.version:
            raise NotFound(
                f"model '{name}' has no live version '{version}'; the live version is '{entry.version}'"
            )
        return entry
