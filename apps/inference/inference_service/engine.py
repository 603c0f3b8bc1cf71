"""Per-model inference with caching, single-flight and dynamic batching.

For a request of N rows: each row gets a key (model, version, hash of its canonical bytes). Rows found in the
in-process tier, then in Redis, are served from there; identical rows already being computed (by this or a
concurrent request) are awaited instead of recomputed; only the rest go to the batcher. Fresh results are
stored in both tiers (Redis in the background).

Whether a model uses Redis is decided at warm-up: a Redis round trip costs about as much server CPU as
`redis_min_inference_us`; a model whose measured inference is cheaper than that is served from the local
tier and the model only (asking Redis would make every request slower). By the same measurement, a model
cheaper than `inline_inference_max_us` runs on the event loop thread (see batching.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import Awaitable, Sequence

from inference_service.batching import DynamicBatcher
from inference_service.cache import LocalCache, RedisTier
from inference_service.metrics import Metrics
from inference_service.sessions import Row, RowResult, ServedModel

#: Rows handled in one event-loop step (keys, cache lookups, an inline model's run): a few ms for the tabular
#: model on a 2-core machine (test_inference_loop_latency: health p99 about 21 ms beside 25,000-row batches).
LOOP_STEP_ROWS = 1024


class ModelRuntime:
    """A loaded model plus its cache tiers, in-flight table and batcher."""

    def __init__(
        self,
        *,
        model: ServedModel,
        metrics: Metrics,
        local_entries: int,
        redis: RedisTier | None,
        max_batch_size: int,
        max_wait_seconds: float,
        inline: bool = False,
    ) -> None:
        self.model = model
        self.name = model.name
        self.version = model.version
        self._metrics = metrics
        self._local: LocalCache[RowResult] | None = LocalCache(local_entries) if local_entries > 0 else None
        self.redis = redis
        self._prefix = f"inference:{model.name}:{model.version}:".encode()
        self._in_flight: dict[bytes, asyncio.Future[RowResult]] = {}
        batch_size = metrics.batch_size.labels(model.name)
        batch_latency = metrics.batch_latency.labels(model.name)
        rows_computed = metrics.rows_computed.labels(model.name)

        def on_batch(rows: int, seconds: float) -> None:
            batch_size.observe(rows)
            batch_latency.observe(seconds)
            rows_computed.inc(rows)

        self.batcher: DynamicBatcher[Row, RowResult] = DynamicBatcher(
            name=model.name,
            run=model.run_rows,
            max_batch_size=max_batch_size,
            max_wait_seconds=max_wait_seconds,
            on_batch=on_batch,
            inline=inline,
        )
        self._hit_local = metrics.cache_lookups.labels(model.name, "local", "hit")
        self._miss_local = metrics.cache_lookups.labels(model.name, "local", "miss")
        self._hit_redis = metrics.cache_lookups.labels(model.name, "redis", "hit")
        self._miss_redis = metrics.cache_lookups.labels(model.name, "redis", "miss")
        self._joins = metrics.singleflight_joins.labels(model.name)

    def count_response_hit(self, rows: int) -> None:
        """A whole response came from the response cache (inference_service.dataplane), which is part of the
        local tier: its rows count as local hits."""
        self._hit_local.inc(rows)

    def key(self, row: Row) -> bytes:
        digest = hashlib.blake2b(self.model.row_key_bytes(row), digest_size=16).hexdigest()
        return self._prefix + digest.encode()

    def infer(self, rows: Sequence[Row]) -> Awaitable[list[RowResult]]:
        """Results for every row, in order (the one-row coroutine itself when it applies: a frame less)."""
        if len(rows) == 1 and self._local is not None and self.redis is None:
            return self._infer_one(rows[0])
        return self._infer_many(rows)

    async def _infer_many(self, rows: Sequence[Row]) -> list[RowResult]:
        if len(rows) <= LOOP_STEP_ROWS:
            return await self._infer_rows(rows)
        # A large batch in steps of LOOP_STEP_ROWS rows, yielding to the event loop between them: the keys,
        # the cache lookups and an inline model's inference for 23,000 rows are 100+ ms in one loop step.
        results: list[RowResult] = []
        for start in range(0, len(rows), LOOP_STEP_ROWS):
            if start:
                await asyncio.sleep(0)
            results.extend(await self._infer_rows(rows[start : start + LOOP_STEP_ROWS]))
        return results

    async def _infer_rows(self, rows: Sequence[Row]) -> list[RowResult]:
        keys = [self.key(row) for row in rows]
        results: list[RowResult | None] = [None] * len(rows)
        missing: list[int] = []
        local = self._local
        if local is not None:
            for i, key in enumerate(keys):
                cached = local.get(key)
                if cached is None:
                    missing.append(i)
                else:
                    results[i] = cached
            if len(rows) - len(missing):
                self._hit_local.inc(len(rows) - len(missing))
            if missing:
                self._miss_local.inc(len(missing))
        else:
            missing = list(range(len(rows)))
        if missing and self.redis is not None:
            missing = await self._from_redis(keys, missing, results)
        if missing:
            await self._compute(rows, keys, missing, results)
        return results  # type: ignore[return-value]

    async def _infer_one(self, row: Row) -> list[RowResult]:
        """The same steps for the common one-row request without Redis, with fewer allocations."""
        key = self.key(row)
        local = self._local
        assert local is not None
        cached = local.get(key)
        if cached is not None:
            self._hit_local.inc()
            return [cached]
        self._miss_local.inc()
        future = self._in_flight.get(key)
        if future is not None:
            self._joins.inc()
            return [await future]
        future = self._in_flight[key] = asyncio.get_running_loop().create_future()
        try:
            (result,) = await self.batcher.submit((row,))
        except BaseException as exc:
            self._in_flight.pop(key, None)
            future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        del self._in_flight[key]
        future.set_result(result)
        local.put(key, result)
        return [result]

    async def _from_redis(
        self, keys: list[bytes], missing: list[int], results: list[RowResult | None]
    ) -> list[int]:
        assert self.redis is not None
        values = await self.redis.get_many([keys[i] for i in missing])
        if values is None:
            return missing
        still: list[int] = []
        for i, blob in zip(missing, values, strict=True):
            if blob is None:
                still.append(i)
                continue
            try:
                decoded = self.model.decode_result(blob)
            except (ValueError, IndexError, TypeError, struct.error):
                still.append(i)  # a value from another format version: recompute and overwrite
                continue
            results[i] = decoded
            if self._local is not None:
                self._local.put(keys[i], decoded)
        hits = len(missing) - len(still)
        if hits:
            self._hit_redis.inc(hits)
        if still:
            self._miss_redis.inc(len(still))
        return still

    async def _compute(
        self, rows: Sequence[Row], keys: list[bytes], missing: list[int], results: list[RowResult | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        owned: dict[bytes, asyncio.Future[RowResult]] = {}
        to_run: list[int] = []
        waits: list[tuple[int, asyncio.Future[RowResult]]] = []
        for i in missing:
            key = keys[i]
            future = self._in_flight.get(key)
            if future is None:
                future = loop.create_future()
                self._in_flight[key] = future
                owned[key] = future
                to_run.append(i)
            else:
                self._joins.inc()
            waits.append((i, future))
        if to_run:
            try:
                computed = await self.batcher.submit([rows[i] for i in to_run])
            except BaseException as exc:
                for key in owned:
                    self._in_flight.pop(key, None)
                    owned[key].set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                    owned[key].exception()  # retrieved: no "never retrieved" warning when nobody else waits
                raise
            stored: list[tuple[bytes, bytes]] = []
            for i, result in zip(to_run, computed, strict=True):
                key = keys[i]
                self._in_flight.pop(key, None)
                owned[key].set_result(result)
                if self._local is not None:
                    self._local.put(key, result)
                if self.redis is not None:
                    stored.append((key, self.model.encode_result(result)))
            if self.redis is not None:
                self.redis.put_many_in_background(stored)
        for i, future in waits:
            results[i] = await future
