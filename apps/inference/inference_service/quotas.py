"""Quotas per caller: requests per minute and rows per day, admitted atomically in Redis.

One Lua script reads both counters, refuses when either limit would be passed, and otherwise counts the
request and its rows, so concurrent callers (any number of API pods) are never over-admitted. Windows are
fixed and UTC-aligned (the minute, the day); a refusal says when the window that refused ends
(`Retry-After`). The counters live in the jobs Redis (`noeviction`): in the cache's `allkeys-lru` Redis an
evicted counter would hand out a fresh quota.

The caller is the API key (its sha256, never the key itself), or `anonymous` with authentication off.
If the quota store cannot be reached, `quota_fail_open` decides: admit (counted as `failed_open`) or refuse
with 503 (`failed_closed`); either shows in `inference_quota_decisions_total`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError
from starlette.types import Receive, Scope, Send

from inference_service.dataplane import InferenceHandler, Target
from inference_service.responses import error_response, json_response, read_body, send_response
from inference_service.security import presented_key
from inference_service.state import ServiceState

log = logging.getLogger("inference.quotas")
#: Between two pings of the quota store while the pod starts.
STARTUP_RETRY_SECONDS = 0.2

MINUTE = 60
DAY = 86400

# KEYS: minute counter, day rows counter. ARGV: requests/minute limit, rows/day limit (0: none), rows.
# Returns {admitted (1/0), which limit refused (0 none, 1 requests, 2 rows), requests, rows}.
_ADMIT = """
local requests = tonumber(redis.call('GET', KEYS[1]) or '0')
local rows = tonumber(redis.call('GET', KEYS[2]) or '0')
local rpm, rpd, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if rpm > 0 and requests + 1 > rpm then return {0, 1, requests, rows} end
if rpd > 0 and rows + want > rpd then return {0, 2, requests, rows} end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], 120) end
if want > 0 then
  if redis.call('INCRBY', KEYS[2], want) == want then redis.call('EXPIRE', KEYS[2], 172800) end
end
return {1, 0, requests + 1, rows + want}
"""


def owner_of(scope: Scope, auth: bool) -> str:
    """Who a request counts against: the principal, when the identity gate has put one in the scope; else a
    hash of the API key (the middleware has checked it); `anonymous` with authentication off."""
    principal = scope.get("principal")
    if isinstance(principal, str) and principal:
        return hashlib.sha256(principal.encode()).hexdigest()[:32]
    if not auth:
        return "anonymous"
    key = presented_key(scope["headers"]) or b""
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True, kw_only=True)
class Decision:
    admitted: bool
    status: int  # 200 admitted, 429 over a limit, 503 store down and failing closed
    message: str
    retry_after: int
    usage: dict[str, Any]


class Quotas:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        requests_per_minute: int,
        rows_per_day: int,
        fail_open: bool,
        registry: CollectorRegistry,
        prefix: str = "quota",
    ) -> None:
        self.client = client
        self.rpm = requests_per_minute
        self.rpd = rows_per_day
        self.fail_open = fail_open
        self.prefix = prefix
        self._admit = client.register_script(_ADMIT)
        decisions = Counter(
            "inference_quota_decisions_total",
            "Quota decisions: admitted, limited (429), failed_open / failed_closed (quota store unreachable)",
            ["decision"],
            registry=registry,
        )
        self._admitted = decisions.labels("admitted")
        self._limited = decisions.labels("limited")
        self._failed_open = decisions.labels("failed_open")
        self._failed_closed = decisions.labels("failed_closed")

    def _keys(self, owner: str, now: float) -> tuple[str, str]:
        return (
            f"{self.prefix}:{owner}:m:{int(now // MINUTE)}",
            f"{self.prefix}:{owner}:d:{int(now // DAY)}",
        )

    def _usage(self, requests: int, rows: int, now: float) -> dict[str, Any]:
        return {
            "requests_per_minute": {
                "used": requests,
                "limit": self.rpm or None,
                "resets_in_seconds": MINUTE - int(now % MINUTE),
            },
            "rows_per_day": {
                "used": rows,
                "limit": self.rpd or None,
                "resets_in_seconds": DAY - int(now % DAY),
            },
        }

    async def wait_reachable(self, seconds: float) -> bool:
        """Pings the store until it answers or `seconds` have passed; whether it answered. Awaited before the
        pod reports ready (ServiceState.startup_checks) where quotas fail closed."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                await self.client.ping()
                return True
            except (RedisError, OSError) as exc:
                if time.monotonic() >= deadline:
                    log.warning(
                        "quota store unreachable %.0f s after start (%s); ready anyway, quotas fail %s",
                        seconds, exc, "open" if self.fail_open else "closed",
                    )  # fmt: skip
                    return False
                await asyncio.sleep(STARTUP_RETRY_SECONDS)

    async def admit(self, owner: str, rows: int) -> Decision:
        now = time.time()
        try:
            reply = await self._admit(keys=list(self._keys(owner, now)), args=[self.rpm, self.rpd, rows])
        except (RedisError, OSError) as exc:
            log.warning(
                "quota store unreachable (%s); failing %s", exc, "open" if self.fail_open else "closed"
            )
            if self.fail_open:
                self._failed_open.inc()
                return Decision(admitted=True, status=200, message="", retry_after=0, usage={})
            self._failed_closed.inc()
            return Decision(
                admitted=False, status=503, retry_after=1, usage={},
                message="the quota store is unreachable and quotas fail closed; retry shortly",
            )  # fmt: skip
        admitted, which, requests, used = (int(v) for v in reply)
        usage = self._usage(requests, used, now)
        if admitted:
            self._admitted.inc()
            return Decision(admitted=True, status=200, message="", retry_after=0, usage=usage)
        self._limited.inc()
        if which == 1:
            retry = MINUTE - int(now % MINUTE)
            message = f"quota exceeded: {self.rpm} requests per minute; retry in {retry} s"
        else:
            retry = DAY - int(now % DAY)
            message = (
                f"quota exceeded: {rows} more rows would pass {self.rpd} rows per day ({used} used); "
                f"retry in {retry} s"
            )
        return Decision(admitted=False, status=429, message=message, retry_after=retry, usage=usage)

    async def usage(self, owner: str) -> dict[str, Any]:
        now = time.time()
        requests, rows = await self.client.mget(list(self._keys(owner, now)))
        return self._usage(int(requests or 0), int(rows or 0), now)


def count_rows(kind: bytes, body: bytes, binary_header: bytes | None) -> int:
    """Rows a request asks for, read cheaply from the JSON (the batch dimension of the first V2 input, or
    the number of V1 instances); 0 when the body is malformed (the handler answers it with a 400)."""
    try:
        head = body[: int(binary_header)] if binary_header is not None else body
        doc = orjson.loads(head)
        if kind == b"v1":
            return len(doc["instances"])
        shape = doc["inputs"][0]["shape"]
        return int(shape[0]) if shape and type(shape[0]) is int and shape[0] > 0 else 0
    except (ValueError, KeyError, IndexError, TypeError, orjson.JSONDecodeError):
        return 0


def refusal_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    return [(b"retry-after", str(decision.retry_after).encode())]


class QuotaLimitedHandler(InferenceHandler):
    """The synchronous inference routes with the caller's quota admitted first (request and rows)."""

    def __init__(self, state: ServiceState, quotas: Quotas, *, auth: bool) -> None:
        super().__init__(state)
        self.quotas = quotas
        self.auth = auth

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        target: Target,
        binary_header: bytes | None,
        extra_headers: list[tuple[bytes, bytes]],
        *,
        body: bytes | None = None,
    ) -> int:
        try:
            if body is None:
                body = await read_body(receive, self.limit)
        except Exception as exc:  # too large: the handler's own message
            status = getattr(exc, "status", 400)
            await send_response(send, status, error_response(status, str(exc)), extra_headers)
            return int(status)
        decision = await self.quotas.admit(
            owner_of(scope, self.auth), count_rows(target.kind, body, binary_header)
        )
        if not decision.admitted:
            headers = [*refusal_headers(decision), *extra_headers]
            await send_response(
                send, decision.status, error_response(decision.status, decision.message), headers
            )
            return decision.status
        return await super().__call__(scope, receive, send, target, binary_header, extra_headers, body=body)


router = APIRouter(tags=["quota"])


@router.get("/v2/quota", summary="The caller's quota: usage and limits per window")
async def quota(request: Request) -> Response:
    quotas: Quotas | None = getattr(request.app.state, "quotas", None)
    if quotas is None:
        return json_response({"requests_per_minute": {"limit": None}, "rows_per_day": {"limit": None}})
    owner = owner_of(request.scope, request.app.state.quota_auth)
    try:
        return json_response(await quotas.usage(owner))
    except (RedisError, OSError):
        return json_response({"error": "the quota store is unreachable; retry shortly"}, 503)
