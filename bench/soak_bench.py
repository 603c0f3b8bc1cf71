"""Soak under hostile clients and crashing processes: lost, wrong and unexpected answers, and RSS growth.

    python bench/soak_bench.py [--requests 100000] [--hostile 0.6] [--worker-kill-every 5] \
        [--redis-kill-every 7] [--seed 26]

Processes: on the server cores (`--server-cpus`, default 1) the service (`python -m inference_service`, API
keys on, access log on, its connection limits as deployed but a 2 s header deadline, so a slow or silent
client costs 2 s, not 10), the cache redis-server and the persistent jobs redis-server (AOF, fsync always,
noeviction); two job workers on `--worker-cpus` (default 0: in a cluster they are other pods, and a restarted
worker loads every model, which on the server's one core would stall it for seconds). This script is the
load generator, a separate process pinned to `--client-cpus` (default 0), speaking HTTP/1.1 over its own
sockets, one connection per request.

The mix: `--requests` requests in a seeded random order, `--hostile` of them hostile, one of each kind in
turn: slow headers (a header line a second, never finished), a silent socket, an oversized header (40 KiB), an
oversized body (Content-Length 100 MiB), a BYTES tensor nested 1,000 deep, two Authorization headers, a wrong
API key, no credentials, an output named twice, malformed JSON, a wrong shape. The rest valid: one-row V2
inference of one of 64 fixed rows (90%) and one-row jobs (10%) submitted with an Idempotency-Key and polled to
the end. Faults, all the while: every `--worker-kill-every` s a worker is SIGKILLed and restarted; every
`--redis-kill-every` s a Redis is SIGKILLed and restarted on its port 0.5 s later, the cache and the jobs
store in turn.

Counted: unexpected statuses per kind (the expected ones: slow and silent clients closed without a response
or answered 408; 431; 413; 400; 400; 401; 401; 400; 400; 400; valid 200 or 202; a 503 with Retry-After, at
the connection limit or while the jobs store is down, is retried, as a client should, and counted apart);
wrong answers (a label or probability that differs from onnxruntime's own on the same model file, run here);
lost jobs (accepted with 202, not done once the run ends and the queue has drained); the server's RSS after a
warm-up, at the end and at its peak (/proc, the service process alone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

from inference_service.jobs.local import JobsRedisProcess
from inference_service.local import RedisProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from tests.support.processes import free_port, http_ok, wait_until

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "build" / "models"
KEY = "soak-key-0123456789abcdef"
HOST = "127.0.0.1"

HOSTILE = (
    "slow-headers",
    "silent-socket",
    "oversized-header",
    "oversized-body",
    "deep-json",
    "duplicate-auth",
    "bad-key",
    "no-credentials",
    "duplicate-output",
    "malformed-json",
    "wrong-shape",
)
#: The statuses each kind may get; None: the server closed the connection without a response.
EXPECTED: dict[str, set[int | None]] = {
    "slow-headers": {None, 408},
    "silent-socket": {None, 408},
    "oversized-header": {431},
    "oversized-body": {413},
    "deep-json": {400},
    "duplicate-auth": {400},
    "bad-key": {401},
    "no-credentials": {401},
    "duplicate-output": {400},
    "malformed-json": {400},
    "wrong-shape": {400},
    "infer": {200},
    "job": {202},
}


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    retried_503: int = 0
    wrong: int = 0
    jobs: dict[str, int] = field(default_factory=dict)  # job id -> row index
    lost_states: Counter[str] = field(default_factory=Counter)  # the last status seen of each lost job

    def check(self, kind: str, status: int | None, detail: str = "") -> bool:
        self.sent[kind] += 1
        if status in EXPECTED[kind]:
            return True
        self.unexpected[kind] += 1
        self.examples.setdefault(kind, f"{status} {detail[:160]}")
        return False


async def exchange(
    raw: bytes, timeout: float, trickle: list[bytes] | None = None
) -> tuple[int | None, bytes]:
    """One request on a fresh connection (`Connection: close`): the status and the body; None when the server
    closed the connection without a response."""
    try:
        reader, writer = await asyncio.open_connection(HOST, PORT)
    except OSError as exc:
        return -2, f"cannot connect: {exc!r}".encode()
    try:
        async with asyncio.timeout(timeout):
            writer.write(raw)
            for piece in trickle or []:
                await asyncio.sleep(1.0)
                writer.write(piece)
                await writer.drain()
            data = await reader.read()
    except TimeoutError:
        return -1, b"no answer within the client's time limit"
    except ConnectionError as exc:  # reset by the server before an answer could be read: no response
        return None, repr(exc).encode()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    if not data:
        return None, b""
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return status, body


def dechunk(body: bytes) -> bytes:
    out, rest = [], body
    while rest:
        size_text, _, rest = rest.partition(b"\r\n")
        size = int(size_text.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)


def request(method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


AUTH = [("X-API-Key", KEY)]
JSON = [("Content-Type", "application/json")]
INFER = "/v2/models/breast-cancer/infer"
JOBS = "/v2/models/breast-cancer/jobs"
#: A BYTES tensor nested 1,000 deep (about 2 KB).
DEEP = b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ' + b"[" * 1000 + b'"x"'
DEEP += b"]" * 1000 + b"}]}"


def v2(row: list[float], **extra: Any) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": row}], **extra}
    ).encode()


def hostile(kind: str, row: list[float]) -> tuple[bytes, list[bytes] | None, float]:
    """The raw request, pieces to trickle a second apart, the client's own time limit."""
    if kind == "slow-headers":
        head = f"POST {INFER} HTTP/1.1\r\nHost: {HOST}\r\n".encode()
        return head, [b"X-Slow: 1\r\n"] * 8, 15.0
    if kind == "silent-socket":
        return b"", None, 15.0
    if kind == "oversized-header":
        return request("POST", INFER, [*AUTH, *JSON, ("X-Padding", "a" * 40960)], v2(row)), None, 10.0
    if kind == "oversized-body":
        head = request("POST", INFER, [*AUTH, *JSON], b"")
        head = head.replace(b"Content-Length: 0", b"Content-Length: 104857600")
        return head + b"[" * 1024, None, 10.0
    if kind == "deep-json":
        return request("POST", "/v2/models/minilm-embedding/infer", [*AUTH, *JSON], DEEP), None, 10.0
    if kind == "duplicate-auth":
        headers = [*JSON, ("Authorization", f"Bearer {KEY}"), ("Authorization", "Bearer other")]
        return request("POST", INFER, headers, v2(row)), None, 10.0
    if kind == "bad-key":
        return request("POST", INFER, [*JSON, ("X-API-Key", "not-" + KEY)], v2(row)), None, 10.0
    if kind == "no-credentials":
        return request("POST", INFER, JSON, v2(row)), None, 10.0
    if kind == "duplicate-output":
        outputs = [{"name": "probabilities"}, {"name": "probabilities"}]
        return request("POST", INFER, [*AUTH, *JSON], v2(row, outputs=outputs)), None, 10.0
    if kind == "malformed-json":
        return request("POST", INFER, [*AUTH, *JSON], b'{"inputs": [{"name": '), None, 10.0
    if kind == "wrong-shape":
        return request("POST", INFER, [*AUTH, *JSON], v2(row[:29])), None, 10.0
    raise ValueError(kind)


def correct(reply: dict[str, Any], expected: tuple[int, np.ndarray]) -> bool:
    outputs = {o["name"]: o["data"] for o in reply["outputs"]}
    label = outputs["label"][0]
    probabilities = np.asarray(outputs["probabilities"], dtype=np.float32).ravel()
    return bool(label == expected[0] and np.allclose(probabilities, expected[1], atol=1e-5))


async def valid(kind: str, index: int, rows: list[list[float]], reference: list[Any], tally: Tally) -> None:
    row = rows[index]
    if kind == "infer":
        raw = request("POST", INFER, [*AUTH, *JSON], v2(row))
    else:
        key = f"soak-{index}-{random.getrandbits(64):x}"
        raw = request(
            "POST", "/v2/models/breast-cancer/jobs", [*AUTH, *JSON, ("Idempotency-Key", key)], v2(row)
        )
    for _ in range(200):  # a 503 with Retry-After is retried, as a client should (bounded)
        status, body = await exchange(raw, 30.0)
        if status == 503 and b"retry" in body.lower():
            tally.retried_503 += 1
            await asyncio.sleep(0.2)
            continue
        break
    if not tally.check(kind, status, body.decode(errors="replace")):
        return
    if kind == "infer":
        if not correct(json.loads(body), reference[index % len(reference)]):
            tally.wrong += 1
    else:
        tally.jobs[json.loads(body)["id"]] = index


async def one_hostile(kind: str, row: list[float], tally: Tally) -> None:
    raw, trickle, limit = hostile(kind, row)
    status, body = await exchange(raw, limit, trickle)
    tally.check(kind, status, body.decode(errors="replace"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_service(module: str, env: dict[str, str], cpus: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["taskset", "-c", cpus, sys.executable, "-m", module],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def faults(
    args: argparse.Namespace,
    workers: list[subprocess.Popen[bytes]],
    start_worker: Any,
    stores: list[RedisProcess],
    stop: asyncio.Event,
    counts: Counter[str],
) -> None:
    next_worker = time.monotonic() + args.worker_kill_every
    next_redis = time.monotonic() + args.redis_kill_every
    which = itertools.cycle(range(len(stores)))
    while not stop.is_set():
        await asyncio.sleep(0.1)
        now = time.monotonic()
        if args.worker_kill_every and now >= next_worker:
            victim = random.randrange(len(workers))
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            workers[victim] = start_worker()
            counts["worker SIGKILL"] += 1
            next_worker = now + args.worker_kill_every
        if args.redis_kill_every and now >= next_redis:
            store = stores[next(which)]
            store.kill()
            counts[f"{type(store).__name__} SIGKILL"] += 1
            await asyncio.sleep(0.5)
            for _ in range(5):  # the jobs store replays its AOF first: slow on a busy machine
                try:
                    await asyncio.to_thread(store.start, 60.0)
                    break
                except (RuntimeError, TimeoutError):
                    store.kill()
                    counts["Redis restart retried"] += 1
            pin(store, args.server_cpus)
            next_redis = time.monotonic() + args.redis_kill_every


def pin(store: RedisProcess, cpus: str) -> None:
    assert store._proc is not None
    subprocess.run(["taskset", "-a", "-cp", cpus, str(store._proc.pid)], check=True, capture_output=True)


async def finish_jobs(tally: Tally, rows: list[list[float]], reference: list[Any], budget_s: float) -> int:
    """Polls every accepted job to its end; the number not done when the budget runs out (lost)."""
    pending = dict(tally.jobs)
    last: dict[str, str] = {}
    deadline = time.monotonic() + budget_s
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{PORT}", headers=dict(AUTH), timeout=10) as client:
        while pending and time.monotonic() < deadline:
            for job_id, index in list(pending.items())[:200]:
                try:
                    reply = await client.get(f"/v2/jobs/{job_id}")
                except httpx.HTTPError:
                    continue
                if reply.status_code != 200:
                    last[job_id] = str(reply.status_code)
                    continue
                state = reply.json()
                last[job_id] = state["status"]
                if state["status"] == "done":
                    if not correct(state["result"], reference[index % len(reference)]):
                        tally.wrong += 1
                    del pending[job_id]
                elif state["status"] == "failed":
                    tally.unexpected["job failed"] += 1
                    tally.examples.setdefault("job failed", str(state.get("error"))[:160])
                    del pending[job_id]
            await asyncio.sleep(0.2)
    tally.lost_states = Counter(last.get(job_id, "unseen") for job_id in pending)
    return len(pending)


async def run(
    args: argparse.Namespace, server_pid: int, workers: Any, start_worker: Any, stores: Any
) -> None:
    rng = random.Random(args.seed)
    gen = np.random.default_rng(args.seed)
    rows = [(gen.random(30) * 100).round(4).tolist() for _ in range(64)]
    session = ort.InferenceSession(str(MODELS / "breast-cancer" / "1" / "model.onnx"))
    names = [o.name for o in session.get_outputs()]
    reference = []
    for row in rows:
        out = dict(zip(names, session.run(None, {"input": np.asarray([row], dtype=np.float32)}), strict=True))
        reference.append((int(np.asarray(out["label"]).ravel()[0]), np.asarray(out["probabilities"]).ravel()))
    hostile_count = int(args.requests * args.hostile)
    plan = [HOSTILE[i % len(HOSTILE)] for i in range(hostile_count)]
    plan += ["job" if rng.random() < 0.1 else "infer" for _ in range(args.requests - hostile_count)]
    rng.shuffle(plan)
    tally = Tally()
    stop, counts = asyncio.Event(), Counter[str]()
    fault_task = asyncio.create_task(faults(args, workers, start_worker, stores, stop, counts))
    # slow and silent clients hold a connection for the header deadline: more of them at once
    fast, slow = asyncio.Semaphore(args.concurrency), asyncio.Semaphore(args.slow_concurrency)
    warm = Tally()
    for i in range(0, args.warmup, 16):  # the server's caches and pools filled before its RSS is taken
        await asyncio.gather(
            *(valid("infer", j % len(rows), rows, reference, warm) for j in range(i, i + 16))
        )
    rss_start = rss_peak = rss_kib(server_pid)
    started = time.monotonic()

    async def one(i: int, kind: str) -> None:
        gate = slow if kind in ("slow-headers", "silent-socket") else fast
        async with gate:
            if kind in ("infer", "job"):
                await valid(kind, i % len(rows), rows, reference, tally)
            else:
                await one_hostile(kind, rows[i % len(rows)], tally)

    tasks: set[asyncio.Task[None]] = set()
    for i, kind in enumerate(plan):
        while len(tasks) >= args.concurrency + args.slow_concurrency:
            _, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        tasks.add(asyncio.create_task(one(i, kind)))
        if i % 1000 == 0:
            rss_peak = max(rss_peak, rss_kib(server_pid))
            if i % 10000 == 0:
                print(f"  {i} sent, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    stop.set()
    await fault_task
    lost = await finish_jobs(tally, rows, reference, args.drain_budget)
    rss_end = rss_kib(server_pid)
    rss_peak = max(rss_peak, rss_end)
    total_unexpected = sum(tally.unexpected.values())
    print(f"requests: {len(plan)} ({hostile_count} hostile) in {elapsed:.0f} s; faults: {dict(counts)}")
    print(f"lost jobs: {lost} of {len(tally.jobs)} accepted (last seen: {dict(tally.lost_states)}); "
          f"wrong answers: {tally.wrong}; "
          f"unexpected statuses: {total_unexpected}; 503 retried: {tally.retried_503}")  # fmt: skip
    print(f"server RSS: {rss_start / 1024:.1f} MiB after warm-up, {rss_end / 1024:.1f} MiB at the end "
          f"(+{(rss_end - rss_start) / 1024:.1f} MiB), peak {rss_peak / 1024:.1f} MiB")  # fmt: skip
    print("| kind | sent | unexpected | example |")
    print("|---|---:|---:|---|")
    for kind in [*HOSTILE, "infer", "job", "job failed"]:
        print(f"| {kind} | {tally.sent[kind]} | {tally.unexpected[kind]} | {tally.examples.get(kind, '')} |")


PORT = 0


def main() -> int:
    global PORT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--hostile", type=float, default=0.6, help="share of hostile requests")
    parser.add_argument("--concurrency", type=int, default=32, help="requests at once (other than slow ones)")
    parser.add_argument("--slow-concurrency", type=int, default=200, help="slow and silent clients at once")
    parser.add_argument("--worker-kill-every", type=float, default=5.0, help="seconds; 0: no worker kills")
    parser.add_argument("--redis-kill-every", type=float, default=7.0, help="seconds; 0: no Redis kills")
    parser.add_argument("--header-timeout", type=float, default=2.0)
    parser.add_argument(
        "--drain-budget", type=float, default=300.0, help="seconds to wait for jobs at the end"
    )
    parser.add_argument("--warmup", type=int, default=2000, help="valid requests before the RSS baseline")
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--server-cpus", default="1")
    parser.add_argument("--client-cpus", default="0")
    parser.add_argument("--worker-cpus", default="0", help="not the server's: a restart loads every model")
    args = parser.parse_args()
    random.seed(args.seed)
    os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    cache, jobs_store = RedisProcess(), JobsRedisProcess()
    procs: list[subprocess.Popen[bytes]] = []
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for store in (cache, jobs_store):
            store.start()
            pin(store, args.server_cpus)
        PORT = free_port()
        env = {
            "INFERENCE_MODEL_REPOSITORY": str(MODELS),
            "INFERENCE_MODELS": "breast-cancer:1,minilm-embedding:1",
            "INFERENCE_API_KEYS": KEY,
            "INFERENCE_REDIS_URL": cache.url,
            "INFERENCE_JOBS_REDIS_URL": jobs_store.url,
            "INFERENCE_HEADER_TIMEOUT_SECONDS": str(args.header_timeout),
            "INFERENCE_HOST": HOST,
            "INFERENCE_PORT": str(PORT),
            "INFERENCE_GRPC_PORT": str(free_port()),  # as deployed, not on the shared default 8081
        }
        server = start_service("inference_service", env, args.server_cpus)
        procs.append(server)

        def start_worker() -> subprocess.Popen[bytes]:
            worker_env = {**env, "INFERENCE_PORT": str(free_port())}
            return start_service("inference_service.jobs.worker", worker_env, args.worker_cpus)

        workers.extend(start_worker() for _ in range(2))
        ready = http_ok(f"http://{HOST}:{PORT}/v2/health/ready")
        wait_until(ready, what="the service", timeout_s=120, process=server, interval_s=0.1)
        asyncio.run(run(args, server.pid, workers, start_worker, [cache, jobs_store]))
    finally:
        for proc in [*procs, *workers]:
            proc.kill()
            proc.wait()
        cache.close()
        jobs_store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
