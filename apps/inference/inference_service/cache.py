"""The result cache: an in-process LRU tier in front of an optional Redis tier.

Redis is never allowed to fail or stall a request: every call has a hard timeout, errors are counted, and a
circuit breaker stops calling Redis for a cool-down after a few consecutive failures, then lets one call
through to probe whether it is back (half-open). While open, requests are served from the local tier or run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from inference_service.responses import CachedResponse

log = logging.getLogger("inference.cache")

V = TypeVar("V")


class LocalCache(Generic[V]):
    """A bounded LRU map of key -> value (one per model; values are treated as immutable)."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._data: OrderedDict[bytes, V] = OrderedDict()

    def get(self, key: bytes) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: bytes, value: V) -> None:
        if self._max <= 0:
            return
        data = self._data
        if key in data:
            data.move_to_end(key)
        data[key] = value
        while len(data) > self._max:
            data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class ResponseCache:
    """Whole responses by a hash of the raw request (route kind, binary-header value, body): an identical
    request is answered before any parsing. An LRU bounded by entries and by bytes; one per model."""

    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._max_item = max(1, max_bytes // 64)  # one huge response must not flush everything else
        self._bytes = 0
        self._data: OrderedDict[bytes, CachedResponse] = OrderedDict()

    @staticmethod
    def key(kind: bytes, binary_header: bytes | None, body: bytes) -> bytes:
        digest = hashlib.blake2b(digest_size=16, person=kind)
        if binary_header is not None:
            digest.update(binary_header)  # digits only: the newline makes the boundary unambiguous
            digest.update(b"\n")
        digest.update(body)
        return digest.digest()

    def get(self, key: bytes) -> CachedResponse | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: bytes, value: CachedResponse) -> None:
        size = value.size
        if size > self._max_item:
            return
        old = self._data.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._data[key] = value
        self._bytes += size
        while len(self._data) > self._max_entries or self._bytes > self._max_bytes:
            _, evicted = self._data.popitem(last=False)
            self._bytes -= evicted.size

    def __len__(self) -> int:
        return len(self._data)

    @property
    def bytes(self) -> int:
        return self._bytes


class CircuitBreaker:
    """Closed -> open after `failures` consecutive errors; half-open (one probe) after `cooldown` seconds."""

    def __init__(self, *, failures: int, cooldown_seconds: float) -> None:
        self._threshold = failures
        self._cooldown = cooldown_seconds
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self._opened_at >= self._cooldown else "open"

    def allow(self) -> bool:
        if self._opened_at is None:
            return True
        if self._probing or time.monotonic() - self._opened_at < self._cooldown:
            return False
        self._probing = True  # exactly one probe while half-open
        return True

    def success(self) -> None:
        if self._opened_at is not None:
            log.info("redis is back: circuit closed")
        self._consecutive = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        self._consecutive += 1
        self._probing = False
        if self._opened_at is not None or self._consecutive >= self._threshold:
            if self._opened_at is None:
                log.warning("redis failing: circuit open for %.1fs", self._cooldown)
            self._opened_at = time.monotonic()


class RedisTier:
    """MGET / pipelined SET EX with a hard timeout and a circuit breaker. Never raises to callers."""

    def __init__(
        self,
        *,
        url: str,
        password: str | None,
        timeout_seconds: float,
        ttl_seconds: int,
        breaker: CircuitBreaker,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._timeout = timeout_seconds
        self._ttl = ttl_seconds
        self.breaker = breaker
        self._on_error = on_error
        self._client = aioredis.Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry_on_timeout=False,
            retry=None,
            health_check_interval=0,
            max_connections=64,
        )
        self._writes: set[asyncio.Task[None]] = set()

    def _failed(self, operation: str, error: BaseException) -> None:
        self.breaker.failure()
        if self._on_error is not None:
            self._on_error(operation)
        log.debug("redis %s failed: %r", operation, error)

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None] | None:
        """Values for keys (None where absent), or None when Redis is unavailable."""
        if not keys or not self.breaker.allow():
            return None
        try:
            values: list[bytes | None] = await asyncio.wait_for(
                self._client.mget(keys),  # type: ignore[arg-type]
                self._timeout,
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("get", exc)
            return None
        self.breaker.success()
        return values

    def put_many_in_background(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Stores items with the TTL without making the request wait."""
        if not items or not self.breaker.allow():
            return
        task = asyncio.get_running_loop().create_task(self._put_many(items))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in items:
                    pipe.set(key, value, ex=self._ttl)
                await asyncio.wait_for(pipe.execute(), self._timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("set", exc)
            return
        self.breaker.success()

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._client.ping(), self._timeout))
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        if self._writes:
            await asyncio.wait(self._writes, timeout=self._timeout * 4)
        await self._client.aclose()
