"""Fixtures for the jobs tests: a persistent jobs redis-server, worker processes, the API in process."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from inference_service.jobs.local import JobsRedisProcess
from tests.support.service import running_service


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
    logs = itertools.count()
    with ExitStack() as started:

        def start(*, code: str | None = None, **settings: Any) -> Worker:
            """`code`: Python to run instead of the worker module (a test's fault hook around its main)."""
            log = tmp_path / f"worker-{next(logs)}.log"
            service = started.enter_context(
                running_service(
                    model_repository,
                    settings={
                        "models": "breast-cancer:1",
                        "auth_enabled": "false",
                        "access_log": "false",
                        "jobs_redis_url": jobs_redis.url,
                        "jobs_visibility_timeout_seconds": "1",
                        **settings,
                    },
                    command=[sys.executable, "-c", code]
                    if code
                    else [sys.executable, "-m", "inference_service.jobs.worker"],
                    what="the worker",
                    grace_s=0,
                    stderr=log,
                )
            )
            return Worker(service.process, service.base, log)

        yield start
