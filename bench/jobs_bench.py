"""Benchmark of asynchronous inference: jobs per second and end-to-end latency, one worker and two.

    python bench/jobs_bench.py [--seconds 5] [--concurrency 1,16,64] [--workers 1,2]

Processes: a persistent jobs redis-server (AOF always, noeviction), the service (`python -m
inference_service`, auth off, access log off) and 1 or 2 workers (`python -m inference_service.jobs.worker`),
all pinned to the server cores (`--server-cpus`, default 1); this script is the load generator, pinned to
`--client-cpus` (default 0). C submitters each run a closed loop: submit a one-row breast-cancer job (a new
row each time: no cache hits), poll its status (2 ms, backing off to 20 ms) until done, repeat.
End-to-end latency is the job's own `finished - created` (submit accepted to result stored: server clocks,
so the polling interval does not inflate it). jobs/s counts jobs finished in the measured window. The peer,
measured in the same run and the same way: synchronous `/infer` of the same rows at the same concurrency;
ratios are to it. The machine is shared: compare the ratios, not the absolute numbers.

Each submitter costs the client about three HTTP calls per job (submit and polls) against one per sync
request, and the client is one Python process: so the closed-loop figures are bounded by the client. The
drain figure is not: `--drain N` jobs are queued while the workers are stopped (SIGSTOP), then the workers
are resumed and the time until the stream is empty gives the workers' own jobs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis

from inference_service.jobs.local import JobsRedisProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from tests.support.processes import free_port, http_ok, start

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "build" / "models"


def start_service(module: str, env: dict[str, str], cpus: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    full = {**os.environ, **env, "INFERENCE_PORT": str(port), "INFERENCE_HOST": "127.0.0.1"}
    full["INFERENCE_GRPC_PORT"] = str(free_port())  # not the shared default 8081
    base = f"http://127.0.0.1:{port}"
    command = ["taskset", "-c", cpus, sys.executable, "-m", module]
    return start(command, env=full, ready=http_ok(f"{base}/v2/health/ready"), what=module), base


def body(rng: np.random.Generator) -> dict[str, Any]:
    row = (rng.random(30) * 100).round(4).tolist()
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": row}]}


async def run_cell(base: str, concurrency: int, seconds: float, jobs: bool) -> dict[str, float]:
    latencies: list[float] = []
    done = 0
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def submitter(seed: int, client: httpx.AsyncClient) -> None:
        nonlocal done
        rng = np.random.default_rng(seed * 7919 + int(time.time()))
        while time.monotonic() < stop_at:
            if not jobs:
                started = time.perf_counter()
                reply = await client.post(f"{base}/v2/models/breast-cancer/infer", json=body(rng))
                assert reply.status_code == 200, reply.text
                latencies.append(time.perf_counter() - started)
                done += 1
                continue
            reply = await client.post(f"{base}/v2/models/breast-cancer/jobs", json=body(rng))
            assert reply.status_code == 202, reply.text
            job_id = reply.json()["id"]
            pause = 0.002
            while True:
                await asyncio.sleep(pause)
                status = (await client.get(f"{base}/v2/jobs/{job_id}")).json()
                if status["status"] == "done":
                    break
                assert status["status"] in ("queued", "running"), status
                pause = min(0.02, pause * 1.5)
            if time.monotonic() <= stop_at:
                latencies.append(status["finished"] - status["created"])
                done += 1

    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        started = time.monotonic()
        await asyncio.gather(*(submitter(i, client) for i in range(concurrency)))
        elapsed = min(time.monotonic(), stop_at) - started
    latencies.sort()
    if not latencies:
        return {"per_s": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan")}
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return {
        "per_s": done / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": p99 * 1000,
    }


def drain(base: str, url: str, workers: list[subprocess.Popen[bytes]], count: int) -> float:
    """Queues `count` jobs with the workers stopped, resumes them; the workers' jobs/s until the stream is
    empty."""
    for proc in workers:
        proc.send_signal(signal.SIGSTOP)

    async def fill() -> None:
        rng = np.random.default_rng(int(time.time()))
        async with httpx.AsyncClient(timeout=60) as client:
            gate = asyncio.Semaphore(32)

            async def one() -> None:
                async with gate:
                    reply = await client.post(f"{base}/v2/models/breast-cancer/jobs", json=body(rng))
                    assert reply.status_code == 202, reply.text

            await asyncio.gather(*(one() for _ in range(count)))

    asyncio.run(fill())
    db = redis.Redis.from_url(url)
    started = time.perf_counter()
    for proc in workers:
        proc.send_signal(signal.SIGCONT)
    while db.xlen("jobs:stream"):
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    db.close()
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--server-cpus", default="1")
    parser.add_argument("--client-cpus", default="0")
    parser.add_argument("--drain", type=int, default=2000, help="jobs queued for the drain figure; 0: none")
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    levels = [int(c) for c in args.concurrency.split(",")]
    counts = [int(w) for w in args.workers.split(",")]
    rows: list[tuple[str, int, dict[str, float], dict[str, float]]] = []
    drained: dict[int, float] = {}
    for workers in counts:
        with ExitStack() as stack:
            redis = JobsRedisProcess()
            redis.start()
            stack.callback(redis.close)
            assert redis._proc is not None
            pid = str(redis._proc.pid)
            subprocess.run(["taskset", "-a", "-cp", args.server_cpus, pid], check=True, capture_output=True)
            env = {
                "INFERENCE_MODEL_REPOSITORY": str(MODELS),
                "INFERENCE_MODELS": "breast-cancer:1",
                "INFERENCE_AUTH_ENABLED": "false",
                "INFERENCE_ACCESS_LOG": "false",
                "INFERENCE_JOBS_REDIS_URL": redis.url,
            }
            procs = [start_service("inference_service", env, args.server_cpus)]
            base = procs[0][1]
            procs += [
                start_service("inference_service.jobs.worker", env, args.server_cpus) for _ in range(workers)
            ]
            for proc, _ in procs:
                stack.callback(proc.wait)
                stack.callback(proc.kill)
            if args.drain:
                drained[workers] = drain(base, redis.url, [p for p, _ in procs[1:]], args.drain)
            for concurrency in levels:
                asyncio.run(run_cell(base, concurrency, args.warmup, jobs=True))
                job = asyncio.run(run_cell(base, concurrency, args.seconds, jobs=True))
                sync = asyncio.run(run_cell(base, concurrency, args.seconds, jobs=False))
                rows.append((f"{workers}", concurrency, job, sync))
    print("| workers | submitters | jobs/s | job p50 ms | job p99 ms | sync infer req/s | sync p50 ms | "
          "sync p99 ms | jobs/s : sync req/s |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers_text, concurrency, job, sync in rows:
        print(
            f"| {workers_text} | {concurrency} | {job['per_s']:.0f} | {job['p50_ms']:.2f} | "
            f"{job['p99_ms']:.2f} | "
            f"{sync['per_s']:.0f} | {sync['p50_ms']:.2f} | {sync['p99_ms']:.2f} | "
            f"{job['per_s'] / max(sync['per_s'], 1e-9):.2f} |"
        )
    for workers, per_s in drained.items():
        print(f"drain: {args.drain} queued jobs, {workers} worker(s): {per_s:.0f} jobs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
