"""Quotas (inference_service.quotas) against the real jobs Redis, across two real service processes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx


def _outside_minute_edge() -> None:
    """Waits while the current UTC minute has under 15 s left (a test must not straddle two windows)."""
    left = 60 - time.time() % 60
    if left < 15:
        time.sleep(left + 0.1)


async def _hammer(
    bases: list[str], path: str, body: dict[str, Any], total: int, concurrency: int
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> httpx.Response:
            async with gate:
                return await client.post(bases[i % len(bases)] + path, json=body)

        return list(await asyncio.gather(*(one(i) for i in range(total))))


def test_requests_per_minute_hold_under_concurrent_callers_on_two_processes(
    server_process, jobs_redis, tabular, rows
):
    settings = {"jobs_redis_url": jobs_redis.url, "quota_requests_per_minute": "37", "access_log": "false"}
    with server_process(**settings) as (_, one), server_process(**settings) as (_, two):
        _outside_minute_edge()
        replies = asyncio.run(
            _hammer([one, two], "/v2/models/breast-cancer/infer", tabular(rows(1)), 200, 64)
        )
        statuses = [r.status_code for r in replies]
        assert statuses.count(200) == 37 and statuses.count(429) == 163  # exactly the limit, none over
        refused = next(r for r in replies if r.status_code == 429)
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "37 requests per minute" in refused.json()["error"]
        usage = httpx.get(f"{one}/v2/quota").json()
        assert usage["requests_per_minute"]["used"] == 37 and usage["requests_per_minute"]["limit"] == 37


def test_rows_per_day_hold_under_concurrent_callers_on_sync_and_job_paths(
    server_process, jobs_redis, tabular, rows
):
    settings = {"jobs_redis_url": jobs_redis.url, "quota_rows_per_day": "100", "access_log": "false"}
    with server_process(**settings) as (_, one), server_process(**settings) as (_, two):
        seven = tabular(rows(7))
        infer = asyncio.run(_hammer([one, two], "/v2/models/breast-cancer/infer", seven, 30, 32))
        assert [r.status_code for r in infer].count(200) == 14  # 14 x 7 = 98 rows; a 15th would pass 100
        jobs = asyncio.run(_hammer([one, two], "/v2/models/breast-cancer/jobs", tabular(rows(2)), 10, 10))
        assert [r.status_code for r in jobs].count(202) == 1  # 98 + 2 = 100: one more two-row job fits
        refused = next(r for r in jobs if r.status_code == 429)
        assert "rows per day" in refused.json()["error"] and int(refused.headers["retry-after"]) > 0
        day = httpx.get(f"{two}/v2/quota").json()["rows_per_day"]
        assert day["used"] == 100 and day["limit"] == 100 and 0 < day["resets_in_seconds"] <= 86400


def test_an_unreachable_quota_store_fails_closed_or_open_as_configured(
    make_client, jobs_redis, read_metric, tabular, rows
):
    jobs_redis.stop()
    with make_client(
        jobs_redis_url=jobs_redis.url,
        quota_requests_per_minute=10,
        jobs_redis_timeout_ms=200,
        quota_store_startup_wait_seconds=0,  # ready at once, the store still down
    ) as client:
        closed = client.post("/v2/models/breast-cancer/infer", json=tabular(rows(1)))
        assert closed.status_code == 503 and "quotas fail closed" in closed.json()["error"]
        assert read_metric(client, "inference_quota_decisions_total", decision="failed_closed") == 1
    with make_client(
        jobs_redis_url=jobs_redis.url,
        quota_requests_per_minute=10,
        jobs_redis_timeout_ms=200,
        quota_fail_open=True,
    ) as client:
        assert client.post("/v2/models/breast-cancer/infer", json=tabular(rows(1))).status_code == 200
        assert read_metric(client, "inference_quota_decisions_total", decision="failed_open") == 1
        assert read_metric(client, "inference_quota_decisions_total", decision="admitted") == 0


def test_quotas_without_a_jobs_redis_refuse_to_start(model_repository):
    import pytest

    from inference_service.app import create_app
    from inference_service.settings import Settings

    with pytest.raises(ValueError, match="need INFERENCE_JOBS_REDIS_URL"):
        create_app(Settings(model_repository=model_repository, auth_enabled=False, quota_rows_per_day=5))


def _poll(client: Any, path: str, status: int, timeout: float = 20.0) -> float:
    """Seconds until `path` answers `status` (fails after `timeout`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if client.get(path).status_code == status:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{path} did not answer {status} within {timeout} s")


def test_readiness_waits_for_a_quota_store_that_fails_closed(make_client, jobs_redis, tabular, rows):
    """A pod Ready before its first connection to the quota store is made would refuse its first requests
    with 503 (the node test saw it: a NetworkPolicy agent dropped a new pod's first packets to the store)."""
    jobs_redis.stop()
    settings = {"jobs_redis_url": jobs_redis.url, "quota_requests_per_minute": 100}
    with make_client(wait=False, jobs_redis_timeout_ms=200, **settings) as client:
        _poll(client, "/v2/models/breast-cancer/ready", 200)  # the model is loaded and warmed ...
        time.sleep(1.0)
        assert client.get("/v2/health/ready").status_code == 503  # ... but the store has not answered yet
        jobs_redis.start()
        _poll(client, "/v2/health/ready", 200, timeout=10)
        assert client.post("/v2/models/breast-cancer/infer", json=tabular(rows(1))).status_code == 200
    jobs_redis.stop()
    failing_open = {**settings, "jobs_redis_timeout_ms": 200, "quota_fail_open": True}
    with make_client(wait=False, **failing_open) as client:  # failing open: no wait
        _poll(client, "/v2/health/ready", 200, timeout=10)
