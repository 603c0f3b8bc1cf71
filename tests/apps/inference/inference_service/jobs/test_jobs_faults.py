"""Faults, with real processes: a worker killed mid-job, the job store restarted, a poison job."""

from __future__ import annotations

import signal
import socket
import time

import httpx


def test_a_worker_killed_mid_job_loses_nothing_and_each_job_completes_once(
    wait_status, make_client, jobs_redis, jobs_db, start_worker, text, tabular, rows
):
    long_job = text(
        [f"document {i}: " + "the quick brown fox jumps over the lazy dog " * 4 for i in range(600)]
    )
    with make_client(models="", jobs_redis_url=jobs_redis.url) as client:
        long_id = client.post("/v2/models/minilm-embedding/jobs", json=long_job).json()["id"]
        short_ids = [
            client.post("/v2/models/breast-cancer/jobs", json=tabular(rows(2, seed=i))).json()["id"]
            for i in range(20)
        ]
        first = start_worker(models="", jobs_worker_concurrency=4)
        wait_status(client, long_id, "running", "done", timeout=60)
        time.sleep(0.3)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        left = [j for j in [long_id, *short_ids] if client.get(f"/v2/jobs/{j}").json()["status"] != "done"]
        assert long_id in left, "the long job finished before the kill; the test proves nothing"
        assert jobs_db.xpending("jobs:stream", "workers")["pending"] >= 1  # claimed, never acked

        second = start_worker(models="")
        results = {j: wait_status(client, j, "done", "failed") for j in [long_id, *short_ids]}
        assert all(r["status"] == "done" for r in results.values()), [
            r.get("error") for r in results.values()
        ]
        # The killed delivery ran beside other jobs: counted as lost, not as an attempt.
        assert results[long_id]["attempts"] == 1
        assert jobs_db.hget(f"jobs:job:{long_id}", "lost") == b"1"
        expected = client.post("/v2/models/minilm-embedding/infer", json=long_job).json()
        assert results[long_id]["result"]["outputs"][0]["shape"] == expected["outputs"][0]["shape"]
        got, want = results[long_id]["result"]["outputs"][0]["data"], expected["outputs"][0]["data"]
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 1e-4
        # Stored once: the second worker completed exactly the jobs left unfinished by the first.
        assert second.metric("inference_jobs_total", outcome="done") == len(left)
        assert second.metric("inference_jobs_total", outcome="already_finished") == 0
        assert second.metric("inference_jobs_reclaimed_total") >= 1
        assert jobs_db.xlen("jobs:stream") == 0 and jobs_db.xpending("jobs:stream", "workers")["pending"] == 0
        assert jobs_db.exists("jobs:dead") == 0


def test_queued_jobs_survive_a_restart_of_the_job_store(
    wait_status, make_client, jobs_redis, jobs_db, start_worker, tabular, rows
):
    with make_client(jobs_redis_url=jobs_redis.url) as client:
        ids = [
            client.post("/v2/models/breast-cancer/jobs", json=tabular(rows(1, seed=i))).json()["id"]
            for i in range(25)
        ]
        jobs_redis.kill()  # SIGKILL: a crash, no shutdown save
        down = client.post("/v2/models/breast-cancer/jobs", json=tabular(rows(1)))
        assert down.status_code == 503 and "job store is unreachable" in down.json()["error"]
        assert down.headers["retry-after"] == "1"
        jobs_redis.start()  # same port, same data folder: replays the append-only file
        assert jobs_db.xlen("jobs:stream") == 25
        worker = start_worker()
        for job_id in ids:
            assert wait_status(client, job_id, "done", "failed")["status"] == "done"
        assert worker.metric("inference_jobs_total", outcome="done") == 25
        assert jobs_db.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"


def test_a_poison_job_ends_in_the_dead_letter_stream_after_n_tries(
    wait_status, make_client, jobs_redis, jobs_db, start_worker, text
):
    # The API serves the embedding model; the worker does not (a misconfigured worker): every try fails.
    with make_client(models="", jobs_redis_url=jobs_redis.url) as client:
        poison = client.post("/v2/models/minilm-embedding/jobs", json=text(["hello"])).json()["id"]
        worker = start_worker(jobs_max_attempts=3, jobs_visibility_timeout_seconds=0.3)
        failed = wait_status(client, poison, "failed", "done", timeout=30)
        assert failed["status"] == "failed" and failed["attempts"] == 3, failed
        assert (
            "gave up after 3 attempts" in failed["error"]
            and "unknown model 'minilm-embedding'" in failed["error"]
        )
        ((_entry_id, fields),) = jobs_db.xrange("jobs:dead")
        assert fields[b"id"].decode() == poison and fields[b"attempts"] == b"3"
        assert fields[b"model"] == b"minilm-embedding" and b'"hello"' in fields[b"body"]
        assert worker.metric("inference_jobs_total", outcome="retry") == 3
        assert worker.metric("inference_jobs_total", outcome="dead_lettered") == 1
        deadline = time.monotonic() + 5
        while worker.metric("inference_jobs_dead_letter_entries") != 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert jobs_db.xlen("jobs:stream") == 0
        assert httpx.get(f"{worker.base}/v2/health/live").status_code == 200


def test_jobs_delivered_to_a_worker_whose_read_reply_was_lost_run_without_waiting_for_the_timeout(
    wait_status, make_client, jobs_redis, jobs_db, start_worker, tabular, rows
):
    # A read the server answered but the worker never saw (a timeout or a dropped connection after
    # delivery): the entries are pending for that worker. It takes them back on its next reclaim tick
    # (half the visibility timeout), not only after they have been idle for the whole timeout.
    with make_client(jobs_redis_url=jobs_redis.url) as client:
        worker = start_worker(jobs_visibility_timeout_seconds=10)
        consumer = f"{socket.gethostname()}-{worker.proc.pid}"
        deadline = time.monotonic() + 10
        while not jobs_db.exists("jobs:stream"):  # the worker creates its group once its models are loaded
            assert time.monotonic() < deadline
            time.sleep(0.02)
        worker.proc.send_signal(signal.SIGSTOP)
        ids = [
            client.post("/v2/models/breast-cancer/jobs", json=tabular(rows(1, seed=i))).json()["id"]
            for i in range(5)
        ]
        # The reply "lost": the worker's own blocked read may already have been handed the first job.
        lost = jobs_db.xreadgroup("workers", consumer, {"jobs:stream": ">"}, count=5)
        assert len(lost[0][1]) >= 4
        worker.proc.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        for job_id in ids:
            assert wait_status(client, job_id, "done", "failed", timeout=20)["status"] == "done"
        assert time.monotonic() - resumed < 8  # under the 10 s an idle entry needs to be reclaimed
        assert worker.metric("inference_jobs_total", outcome="done") == 5
        assert worker.metric("inference_jobs_reclaimed_total") == 0


# A worker whose job of request id "poison" kills it (SIGKILL, as an out-of-memory kill would) while its
# neighbours are still running (each job takes 0.2 s): a test hook around the real worker's main, so the
# service itself carries no fault switch.
POISON_WORKER = """
import asyncio, os, signal
from inference_service.jobs import worker

compute = worker.Worker._compute

async def _compute(self, job):
    if b'"id":"poison"' in job.body:
        await asyncio.sleep(0.1)
        os.kill(os.getpid(), signal.SIGKILL)
    await asyncio.sleep(0.2)
    return await compute(self, job)

worker.Worker._compute = _compute
worker.main()
"""


def test_a_job_that_kills_its_worker_takes_no_healthy_neighbour_with_it(
    wait_status, make_client, jobs_redis, jobs_db, start_worker, tabular, rows
):
    """One poison job among 500 healthy ones, the worker restarted after each crash: the poison job is
    dead-lettered with its own reason after 3 crashes (twice beside others, then alone), and all 500 healthy
    jobs are done (a crash used to count an attempt against every job the worker held, 62 of 500 died)."""
    with make_client(jobs_redis_url=jobs_redis.url) as client:
        poison = client.post("/v2/models/breast-cancer/jobs", json=tabular(rows(1), id="poison")).json()["id"]
        healthy = [
            client.post("/v2/models/breast-cancer/jobs", json=tabular(rows(1, seed=i))).json()["id"]
            for i in range(500)
        ]
        crashes = 0
        deadline = time.monotonic() + 120
        worker = start_worker(code=POISON_WORKER, jobs_max_attempts=3)
        while client.get(f"/v2/jobs/{poison}").json()["status"] != "failed":
            assert time.monotonic() < deadline, "the poison job was not dead-lettered in 120 s"
            if worker.proc.poll() is not None:
                crashes += 1
                assert crashes <= 5, "the worker keeps crashing"
                worker = start_worker(code=POISON_WORKER, jobs_max_attempts=3)
            time.sleep(0.05)
        results = [wait_status(client, j, "done", "failed", timeout=120) for j in healthy]
        failed = client.get(f"/v2/jobs/{poison}").json()
    assert [r["status"] for r in results] == ["done"] * 500, [r for r in results if r["status"] != "done"][:3]
    assert crashes == 3, crashes
    assert "its worker was lost while it ran alone" in failed["error"], failed
    assert "after 2 losses beside other jobs" in failed["error"], failed
    ((_, fields),) = jobs_db.xrange("jobs:dead")
    assert fields[b"id"].decode() == poison
    assert worker.proc.poll() is None  # the last worker lives on


def test_a_result_too_large_fails_on_its_first_attempt_with_the_true_reason(
    wait_status, make_client, jobs_redis, jobs_db, start_worker, tabular, rows
):
    """A result over the limit, or one the job store has no memory for, fails at once with that reason
    (it used to rerun 3 times as an unhandled task error and die as 'the worker running it was lost')."""
    with make_client(jobs_redis_url=jobs_redis.url, jobs_max_result_bytes=2000) as client:
        refused = client.post("/v2/models/breast-cancer/jobs", json=tabular(rows(1000)))
        assert refused.status_code == 413 and "at least" in refused.json()["error"]  # bound before queueing
        over = client.post("/v2/models/breast-cancer/jobs", json=tabular(rows(150, seed=3))).json()["id"]
        strict = start_worker(jobs_max_result_bytes=2000)
        failed = wait_status(client, over, "failed", "done", timeout=60)
        assert failed["attempts"] == 1 and "exceeds the limit of 2000" in failed["error"], failed
        strict.proc.terminate()
        strict.proc.wait()
    # The job store fills up (maxmemory, noeviction) while the job runs: its result cannot be stored. (Its
    # 5,000-row body is over the 1 MiB default for a job's request.)
    with make_client(jobs_redis_url=jobs_redis.url, jobs_max_request_bytes=8 * 2**20) as client:
        job = client.post("/v2/models/breast-cancer/jobs", json=tabular(rows(5000, seed=5)))
        assert job.status_code == 202
        try:
            start_worker(code=FILLING_WORKER)
            failed = wait_status(client, job.json()["id"], "failed", "done", timeout=60)
        finally:
            jobs_db.config_set("maxmemory", "0")
        assert failed["status"] == "failed" and failed["attempts"] == 1, failed
        assert "out of memory" in failed["error"], failed
        ((_, fields),) = jobs_db.xrange("jobs:dead", count=2)[-1:]
        assert fields[b"id"].decode() == job.json()["id"]


# A worker that, once a job is computed, leaves the jobs Redis no memory (as other results filling it would).
FILLING_WORKER = """
import os
import redis
from inference_service.jobs import worker

compute = worker.Worker._compute

async def _compute(self, job):
    result = await compute(self, job)
    store = redis.Redis.from_url(os.environ["INFERENCE_JOBS_REDIS_URL"])
    store.config_set("maxmemory", str(store.info("memory")["used_memory"] - 1))
    return result

worker.Worker._compute = _compute
worker.main()
"""
