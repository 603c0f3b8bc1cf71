"""Fixtures for the jobs tests: a persistent jobs redis-server, worker processes, the API in process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from inference_service.jobs.local import JobsRedisProcess
from inference_service.local import free_port


@pytest.fixture
def jobs_redis() -> Iterator[JobsRedisProcess]:
    """A private, persistent (AOF always, noeviction) redis-server per test."""
    server = JobsRedisProcess()
    server.start()
    yield server
    server.close()


@pytest.fixture
def jobs_db(jobs_redis: JobsRedisProcess) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(jobs_redis.url)
    yield client
    client.close()


class Worker:
    def __init__(self, proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.proc = proc
        self.base = base
        self.log = log

    def metric(self, name: str, **labels: str) -> float:
        for line in httpx.get(f"{self.base}/metrics").text.splitlines():
            head, _, value = line.rpartition(" ")
            metric_name, _, label_text = head.partition("{")
            if line.startswith("#") or metric_name != name:
                continue
            found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if part)
            if all(found.get(k, "").strip('"') == v for k, v in labels.items()):
                return float(value)
        return 0.0


WorkerFactory = Callable[..., Worker]


def _wait_status(client: Any, job_id: str, *wanted: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/v2/jobs/{job_id}").json()
        if body.get("status") in wanted:
            return body
        assert time.monotonic() < deadline, f"job {job_id} still {body}"
        time.sleep(0.02)


@pytest.fixture
def wait_status() -> Callable[..., dict[str, Any]]:
    """wait_status(client, job_id, *statuses, timeout=90): polls GET /v2/jobs/{id} until one is reached."""
    return _wait_status


@pytest.fixture
def start_worker(
    model_repository: Path, jobs_redis: JobsRedisProcess, tmp_path: Path
) -> Iterator[WorkerFactory]:
    """Starts `python -m inference_service.jobs.worker` against the test's jobs Redis; waits until ready."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*, code: str | None = None, **settings: Any) -> Worker:
        """`code`: Python to run instead of the worker module (a test's fault hook around its main)."""
        port = free_port()
        env = {
            **os.environ,
            "INFERENCE_MODEL_REPOSITORY": str(model_repository),
            "INFERENCE_MODELS": "breast-cancer:1",
            "INFERENCE_PORT": str(port),
            "INFERENCE_HOST": "127.0.0.1",
            "INFERENCE_AUTH_ENABLED": "false",
            "INFERENCE_ACCESS_LOG": "false",
            "INFERENCE_JOBS_REDIS_URL": jobs_redis.url,
            "INFERENCE_JOBS_VISIBILITY_TIMEOUT_SECONDS": "1",
            **{f"INFERENCE_{k.upper()}": str(v) for k, v in settings.items()},
        }
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-c", code]
                if code
                else [sys.executable, "-m", "inference_service.jobs.worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/v2/health/ready").status_code == 200:
                    return Worker(proc, base, log)
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "worker not ready in 60 s"
            time.sleep(0.05)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
