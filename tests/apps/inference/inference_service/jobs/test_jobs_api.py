"""The jobs API in process (real app, real persistent redis-server) with real worker processes."""

from __future__ import annotations

import json
import time


def test_bad_input_is_a_400_at_submit_and_nothing_is_queued(make_client, jobs_redis, jobs_db, tabular, rows):
    with make_client(jobs_redis_url=jobs_redis.url) as client:
        bad_shape = tabular(rows(1))
        bad_shape["inputs"][0]["shape"] = [1, 29]
        reply = client.post("/v2/models/breast-cancer/jobs", json=bad_shape)
        assert reply.status_code == 400 and "does not match the model's [-1, 30]" in reply.json()["error"]
        reply = client.post("/v2/models/breast-cancer/jobs", content=b"{not json")
        assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]
        binary_out = tabular(rows(1), parameters={"binary_data_output": True})
        reply = client.post("/v2/models/breast-cancer/jobs", json=binary_out)
        assert reply.status_code == 400 and "binary outputs" in reply.json()["error"]
        reply = client.post("/v2/models/no-such/jobs", json=tabular(rows(1)))
        assert reply.status_code == 404
        reply = client.post("/v2/models/breast-cancer/versions/9/jobs", json=tabular(rows(1)))
        assert reply.status_code == 404
        assert jobs_db.exists("jobs:stream") == 0 or jobs_db.xlen("jobs:stream") == 0


def test_a_job_body_over_the_jobs_request_limit_is_a_413_and_nothing_is_queued(
    make_client, jobs_redis, jobs_db, tabular, rows
):
    """A queued job keeps its body in the jobs Redis until it finishes, so its size has its own bound (the
    one the jobs Redis is sized with, issue 26), below the infer route's: the same body is still served
    synchronously."""
    body = tabular(rows(100))
    size = len(json.dumps(body).encode())
    with make_client(jobs_redis_url=jobs_redis.url, jobs_max_request_bytes=size // 2) as client:
        reply = client.post("/v2/models/breast-cancer/jobs", json=body)
        assert reply.status_code == 413 and f"limit of {size // 2} bytes" in reply.json()["error"]
        assert jobs_db.exists("jobs:stream") == 0 or jobs_db.xlen("jobs:stream") == 0
        assert client.post("/v2/models/breast-cancer/infer", json=body).status_code == 200
        small = client.post("/v2/models/breast-cancer/jobs", json=tabular(rows(10)))
        assert small.status_code == 202


def test_a_job_runs_on_a_worker_and_returns_the_infer_response(
    wait_status, make_client, jobs_redis, start_worker, tabular, rows
):
    request = tabular(rows(5, seed=3))
    with make_client(jobs_redis_url=jobs_redis.url, api_keys="key-a-0123456789,key-b-0123456789") as client:
        other = {"Authorization": "Bearer key-b-0123456789"}
        submitted = client.post(
            "/v2/models/breast-cancer/jobs",
            json=request,
            headers={"Authorization": "Bearer key-a-0123456789"},
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        assert submitted.headers["location"] == f"/v2/jobs/{job_id}"
        mine = {"Authorization": "Bearer key-a-0123456789"}
        queued = client.get(f"/v2/jobs/{job_id}", headers=mine).json()
        assert queued["status"] == "queued" and queued["attempts"] == 0 and "result" not in queued
        assert client.get(f"/v2/jobs/{job_id}", headers=other).status_code == 404  # not the submitter's
        assert client.get("/v2/jobs/" + "0" * 32, headers=mine).status_code == 404
        start_worker()
        client.headers["Authorization"] = "Bearer key-a-0123456789"
        done = wait_status(client, job_id, "done", "failed")
        assert done["status"] == "done" and done["attempts"] == 1, done
        expected = client.post("/v2/models/breast-cancer/infer", json=request).json()
        assert done["result"] == expected
        assert done["created"] <= done["started"] <= done["finished"]


def test_the_same_idempotency_key_and_body_give_the_same_job(make_client, jobs_redis, jobs_db, tabular, rows):
    with make_client(jobs_redis_url=jobs_redis.url) as client:
        first = client.post(
            "/v2/models/breast-cancer/jobs", json=tabular(rows(2)), headers={"Idempotency-Key": "k-1"}
        )
        again = client.post(
            "/v2/models/breast-cancer/jobs", json=tabular(rows(2)), headers={"Idempotency-Key": "k-1"}
        )
        assert first.status_code == again.status_code == 202
        assert first.json()["id"] == again.json()["id"] and again.headers["idempotent-replayed"] == "true"
        assert again.json()["status"] == "queued" and "idempotent-replayed" not in first.headers
        other = client.post(
            "/v2/models/breast-cancer/jobs", json=tabular(rows(3)), headers={"Idempotency-Key": "k-1"}
        )
        assert other.status_code == 422 and first.json()["id"] in other.json()["error"]
        fresh = client.post(
            "/v2/models/breast-cancer/jobs", json=tabular(rows(2)), headers={"Idempotency-Key": "k-2"}
        )
        assert fresh.status_code == 202 and fresh.json()["id"] != first.json()["id"]
        assert jobs_db.xlen("jobs:stream") == 2  # k-1 once, k-2 once


def test_rows_of_concurrent_jobs_share_batches_on_a_worker(
    wait_status, make_client, jobs_redis, start_worker, tabular, rows
):
    with make_client(jobs_redis_url=jobs_redis.url) as client:
        ids = [
            client.post("/v2/models/breast-cancer/jobs", json=tabular(rows(1, seed=i))).json()["id"]
            for i in range(40)
        ]
        worker = start_worker(max_batch_size=32)
        for job_id in ids:
            assert wait_status(client, job_id, "done", "failed")["status"] == "done"
        batches = worker.metric("inference_batch_size_count", model="breast-cancer")
        assert worker.metric("inference_jobs_total", outcome="done") == 40
        assert 0 < batches < 40  # 40 one-row jobs ran in fewer onnxruntime calls


def test_a_jobs_record_and_its_workers_lines_carry_the_submitting_request_id(
    wait_status, make_client, jobs_redis, start_worker, tabular, rows
):
    """The worker serves version 1 only; a job for version 2 fails there, in a line naming its request."""
    with make_client(jobs_redis_url=jobs_redis.url, models="breast-cancer:2", jobs_max_attempts=1) as client:
        submitted = client.post(
            "/v2/models/breast-cancer/jobs", json=tabular(rows(1)), headers={"X-Request-Id": "submit-77"}
        )
        assert submitted.status_code == 202 and submitted.headers["x-request-id"] == "submit-77"
        job_id = submitted.json()["id"]
        assert client.get(f"/v2/jobs/{job_id}").json()["request_id"] == "submit-77"
        worker = start_worker(jobs_max_attempts=1)
        assert wait_status(client, job_id, "failed")["request_id"] == "submit-77"
    lines = [json.loads(line) for line in worker.log.read_text().splitlines() if line.startswith("{")]
    failed = [line for line in lines if job_id in line["message"] and "failed" in line["message"]]
    assert failed and all(line["request_id"] == "submit-77" for line in failed), lines


def test_each_worker_takes_only_its_own_services_jobs(
    wait_status, make_client, jobs_redis, start_worker, tabular, rows
):
    """Two services in one jobs Redis, as the manifests configure them (INFERENCE_JOBS_PREFIX per service):
    `fraud`'s worker runs its own job and never touches `inference`'s, which waits for its own worker."""
    body = tabular(rows(2, seed=11))
    with (
        make_client(jobs_redis_url=jobs_redis.url, jobs_prefix="jobs-inference") as inference,
        make_client(
            jobs_redis_url=jobs_redis.url, jobs_prefix="jobs-fraud", models="breast-cancer:2"
        ) as fraud,
    ):
        theirs = inference.post("/v2/models/breast-cancer/jobs", json=body).json()["id"]
        mine = fraud.post("/v2/models/breast-cancer/jobs", json=body).json()["id"]
        start_worker(jobs_prefix="jobs-fraud", models="breast-cancer:2")
        done = wait_status(fraud, mine, "done", "failed")
        assert done["status"] == "done" and done["attempts"] == 1, done
        time.sleep(
            1.5
        )  # past the visibility timeout (1 s): a worker reading every stream would have claimed it
        waiting = inference.get(f"/v2/jobs/{theirs}").json()
        assert waiting["status"] == "queued" and waiting["attempts"] == 0, waiting
        assert fraud.get(f"/v2/jobs/{theirs}").status_code == 404  # another service's records are not visible
        start_worker(jobs_prefix="jobs-inference")
        done = wait_status(inference, theirs, "done", "failed")
        assert done["status"] == "done" and done["attempts"] == 1 and done["model_version"] == "1", done
