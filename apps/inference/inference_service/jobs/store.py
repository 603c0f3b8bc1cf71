"""The job store: one hash per job, a stream of job ids with one consumer group, a dead-letter stream.

Keys (prefix `jobs` by default; in the jobs Redis, which must be `noeviction` and persisted):

- `jobs:job:<id>`   hash: status (queued, running, done, failed), model, version, binary (the
                    Inference-Header-Content-Length value), body, owner, attempts, created, started,
                    finished, error, last_error, result (the V2 response JSON). No TTL until it finishes;
                    then `result_ttl_seconds`.
- `jobs:stream`     stream of `id=<job id>`; consumer group `workers`. An entry is acked and deleted in the
                    same script that stores the result, so XLEN is what is queued or running.
- `jobs:dead`       stream of jobs that failed `max_attempts` times: id, model, version, attempts,
                    error, body.
- `jobs:idem:<owner>:<sha256 of Idempotency-Key>`  "<job id> <sha256 of the body>", TTL as results.

Every step that touches more than one key is one Lua script, so a crash between two calls cannot leave a
job queued twice, acked without its result, or counted as an attempt without being run.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

_SUBMIT = """
if ARGV[4] == '1' then
  local found = redis.call('GET', KEYS[3])
  if found then return found end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
if ARGV[4] == '1' then
  redis.call('SET', KEYS[3], ARGV[1] .. ' ' .. ARGV[2], 'EX', ARGV[3])
end
return false
"""

# KEYS: job, stream, dead. ARGV: entry id, group, max attempts, result ttl, consumer, now.
# A job found `running` again was on a worker that was lost (killed, OOM, node gone). Beside other jobs
# that loss is not held against it (any of them may have caused it): it counts in `lost`, not `attempts`,
# and after max attempts - 1 such losses the job runs alone (`isolate`). Lost while it ran alone (`alone`,
# set by the worker once nothing else runs), the loss is its own: it is dead-lettered with that reason.
_CLAIM = """
local function drop()
  redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
  redis.call('XDEL', KEYS[2], ARGV[1])
end
local function dead(attempts, error)
  local f = redis.call('HMGET', KEYS[1], 'model', 'version', 'body')
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error', error, 'finished', ARGV[6])
  redis.call('HDEL', KEYS[1], 'body', 'alone')
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('XADD', KEYS[3], '*', 'id', string.sub(KEYS[1], string.len(KEYS[1]) - 31),
    'model', f[1], 'version', f[2], 'attempts', attempts, 'error', error, 'body', f[3] or '')
  drop()
  return {'dead', error}
end
if redis.call('EXISTS', KEYS[1]) == 0 then drop() return {'gone'} end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' or status == 'failed' then drop() return {'finished'} end
local lost = tonumber(redis.call('HGET', KEYS[1], 'lost') or '0')
if status == 'running' then
  if redis.call('HGET', KEYS[1], 'alone') == '1' then
    local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts'))
    return dead(attempts, 'its worker was lost while it ran alone, after ' .. lost ..
      ' losses beside other jobs: the job itself brings its worker down')
  end
  lost = redis.call('HINCRBY', KEYS[1], 'lost', 1)
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > tonumber(ARGV[3]) then
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  local reason = redis.call('HGET', KEYS[1], 'last_error') or 'the worker running it was lost'
  return dead(attempts - 1, 'gave up after ' .. (attempts - 1) .. ' attempts; last: ' .. reason)
end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[5], 'started', ARGV[6])
redis.call('HDEL', KEYS[1], 'alone')
local f = redis.call('HMGET', KEYS[1], 'model', 'version', 'binary', 'body', 'request_id')
local isolate = '0'
if lost >= tonumber(ARGV[3]) - 1 and lost > 0 then isolate = '1' end
return {'run', tostring(attempts), f[1], f[2], f[3] or '', f[4], isolate, f[5] or ''}
"""

# KEYS: job. ARGV: consumer. The worker runs the job with nothing else: a loss now is the job's own.
_ALONE = """
local f = redis.call('HMGET', KEYS[1], 'status', 'worker')
if f[1] == 'running' and f[2] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'alone', '1')
  return 1
end
return 0
"""

# KEYS: job, stream, dead. ARGV: entry id, group, result ttl, error, now. A failure no retry can mend (the
# result is too large to keep): failed and dead-lettered on this attempt, with its reason.
_FAIL = """#!lua flags=allow-oom
local status = redis.call('HGET', KEYS[1], 'status')
if status and status ~= 'done' and status ~= 'failed' then
  local f = redis.call('HMGET', KEYS[1], 'model', 'version', 'attempts', 'body')
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[4], 'finished', ARGV[5])
  redis.call('HDEL', KEYS[1], 'body', 'alone')
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('XADD', KEYS[3], '*', 'id', string.sub(KEYS[1], string.len(KEYS[1]) - 31),
    'model', f[1], 'version', f[2], 'attempts', f[3], 'error', ARGV[4], 'body', f[4] or '')
end
redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[2], ARGV[1])
return 0
"""

# KEYS: job, stream. ARGV: entry id, group, result ttl, result, now.
_COMPLETE = """
local status = redis.call('HGET', KEYS[1], 'status')
local stored = 0
if status and status ~= 'done' and status ~= 'failed' then
  redis.call('HSET', KEYS[1], 'status', 'done', 'result', ARGV[4], 'finished', ARGV[5])
  redis.call('HDEL', KEYS[1], 'body', 'last_error', 'alone')
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  stored = 1
end
redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[2], ARGV[1])
return stored
"""

# KEYS: job. ARGV: error. The entry stays pending: XAUTOCLAIM retries it after the visibility timeout.
_RETRY_LATER = """
if redis.call('HGET', KEYS[1], 'status') == 'running' then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'last_error', ARGV[1])
end
return 0
"""

STATUS_FIELDS = (
    "status", "model", "version", "owner", "attempts", "lost", "created", "started", "finished", "error",
    "request_id",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Claimed:
    """A job a worker now runs."""

    entry_id: str
    job_id: str
    attempts: int
    model: str
    version: str
    binary: str | None
    body: bytes
    #: Lost with its worker max attempts - 1 times beside other jobs: run it with nothing else.
    isolate: bool = False
    request_id: str = ""  # of the request that submitted it: the worker's log lines about it carry it


@dataclass(frozen=True, kw_only=True)
class Submitted:
    job_id: str
    created: bool  # False: an earlier job with the same Idempotency-Key and body


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with another body."""


def new_job_id() -> str:
    return secrets.token_hex(16)  # 32 hex characters (the claim script cuts ids from keys by that length)


def body_digest(binary: str | None, body: bytes) -> str:
    digest = hashlib.sha256((binary or "").encode() + b"\n")
    digest.update(body)
    return digest.hexdigest()


class JobStore:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "jobs",
        group: str = "workers",
        result_ttl_seconds: int = 86400,
        max_attempts: int = 3,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.stream = f"{prefix}:stream"
        self.dead = f"{prefix}:dead"
        self.group = group
        self.result_ttl = result_ttl_seconds
        self.max_attempts = max_attempts
        self._submit = client.register_script(_SUBMIT)
        self._claim = client.register_script(_CLAIM)
        self._complete = client.register_script(_COMPLETE)
        self._retry_later = client.register_script(_RETRY_LATER)
        self._alone = client.register_script(_ALONE)
        self._fail = client.register_script(_FAIL)

    def job_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    async def ensure_group(self) -> None:
        """The consumer group, created from the stream's start (jobs queued before it exist are kept)."""
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def submit(
        self,
        *,
        model: str,
        version: str,
        binary: str | None,
        body: bytes,
        owner: str,
        idempotency_key: str | None,
        request_id: str = "",
    ) -> Submitted:
        job_id = new_job_id()
        digest = body_digest(binary, body)
        idem = ""
        if idempotency_key is not None:
            idem = f"{self.prefix}:idem:{owner}:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"
        fields: list[str | bytes] = [
            "status", "queued", "model", model, "version", version, "binary", binary or "",
            "body", body, "owner", owner, "attempts", "0", "created", f"{time.time():.6f}",
            "request_id", request_id,
        ]  # fmt: skip
        found = await self._submit(
            keys=[self.job_key(job_id), self.stream, idem or self.job_key(job_id) + ":noidem"],
            args=[job_id, digest, self.result_ttl, "1" if idem else "0", *fields],
        )
        if found is None:
            return Submitted(job_id=job_id, created=True)
        earlier, _, earlier_digest = _text(found).partition(" ")
        if earlier_digest != digest:
            raise IdempotencyConflict(earlier)
        return Submitted(job_id=earlier, created=False)

    async def status(self, job_id: str) -> tuple[dict[str, str], bytes | None] | None:
        """The job's status fields and its result (the V2 response JSON), or None when unknown/expired."""
        values: list[Any] = await self.client.hmget(self.job_key(job_id), [*STATUS_FIELDS, "result"])
        if values[0] is None:
            return None
        fields = {k: v.decode() for k, v in zip(STATUS_FIELDS, values, strict=False) if v is not None}
        result: bytes | None = values[-1]
        return fields, result

    async def claim(self, entry_id: str, job_id: str, consumer: str) -> Claimed | str:
        """Starts one delivery of a stream entry: a Claimed job to run, or why not ('gone', 'finished',
        'dead: <reason>'; the entry is then acked and deleted)."""
        reply: list[Any] = await self._claim(
            keys=[self.job_key(job_id), self.stream, self.dead],
            args=[entry_id, self.group, self.max_attempts, self.result_ttl, consumer, f"{time.time():.6f}"],
        )
        what = reply[0].decode()
        if what != "run":
            return what if len(reply) == 1 else f"{what}: {reply[1].decode()}"
        binary = reply[4].decode()
        return Claimed(
            entry_id=entry_id,
            job_id=job_id,
            attempts=int(reply[1]),
            model=reply[2].decode(),
            version=reply[3].decode(),
            binary=binary or None,
            body=bytes(reply[5]),
            isolate=reply[6] == b"1",
            request_id=reply[7].decode(),
        )

    async def complete(self, job: Claimed, result: bytes) -> bool:
        """Stores the result and acks the entry in one step; False when it was already finished (stored
        once: a reclaimed copy that also finishes does not overwrite it)."""
        stored = await self._complete(
            keys=[self.job_key(job.job_id), self.stream],
            args=[job.entry_id, self.group, self.result_ttl, result, f"{time.time():.6f}"],
        )
        return bool(stored)

    async def running_alone(self, job: Claimed, consumer: str) -> None:
        """Marks the job as running with nothing else on its worker (see _CLAIM)."""
        await self._alone(keys=[self.job_key(job.job_id)], args=[consumer])

    async def fail(self, job: Claimed, error: str) -> None:
        """Fails the job now, with `error`, into the dead-letter stream; acks its entry."""
        await self._fail(
            keys=[self.job_key(job.job_id), self.stream, self.dead],
            args=[job.entry_id, self.group, self.result_ttl, error[:500], f"{time.time():.6f}"],
        )

    async def retry_later(self, job: Claimed, error: str) -> None:
        await self._retry_later(keys=[self.job_key(job.job_id)], args=[error[:500]])

    async def read_new(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, str]]:
        """New entries for this consumer (XREADGROUP >): (entry id, job id)."""
        reply: Any = await self.client.xreadgroup(
            self.group, consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        return [(_text(e), _text(f.get(b"id", b""))) for _, entries in reply or [] for e, f in entries]

    async def reclaim(
        self, consumer: str, min_idle_ms: int, count: int, start: str = "0-0"
    ) -> tuple[str, list[tuple[str, str]]]:
        """Entries idle past the visibility timeout (their worker died or stalled), now this consumer's,
        scanning the pending list from `start`; returns where the next scan starts ("0-0": from the top)."""
        reply: Any = await self.client.xautoclaim(
            self.stream, self.group, consumer, min_idle_time=min_idle_ms, start_id=start, count=count
        )
        return _text(reply[0]), [(_text(e), _text(f.get(b"id", b""))) for e, f in reply[1] if f]

    async def own_pending(self, consumer: str, count: int) -> list[tuple[str, str]]:
        """Entries delivered to this consumer and never acked: after a lost XREADGROUP reply (a timeout or
        a dropped connection after the server delivered), they would otherwise wait for the visibility
        timeout. XCLAIM to itself returns their fields."""
        pending: Any = await self.client.xpending_range(
            self.stream, self.group, min="-", max="+", count=count, consumername=consumer
        )
        ids = [p["message_id"] for p in pending]
        if not ids:
            return []
        claimed: Any = await self.client.xclaim(
            self.stream, self.group, consumer, min_idle_time=0, message_ids=ids
        )
        return [(_text(e), _text(f.get(b"id", b""))) for e, f in claimed if f]

    async def keep_alive(self, consumer: str, entry_ids: list[Any]) -> None:
        """Resets the idle time of entries this consumer is running (XCLAIM JUSTID: no delivery counted)."""
        if entry_ids:
            await self.client.xclaim(
                self.stream, self.group, consumer, min_idle_time=0, message_ids=entry_ids, justid=True
            )

    async def depth(self) -> tuple[int, int]:
        """(queued or running entries, dead-lettered entries)."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.xlen(self.stream)
            pipe.xlen(self.dead)
            queued, dead = await pipe.execute()
        return int(queued), int(dead)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def connect(url: str, password: str | None, timeout_seconds: float) -> aioredis.Redis:
    """A client of the jobs Redis (bytes replies; every call bounded by the timeout)."""
    return aioredis.Redis.from_url(
        url,
        password=password,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=0,
    )
