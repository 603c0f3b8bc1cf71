"""Readiness before and after load, load failures, metrics, access logs, graceful shutdown."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time

import httpx
from fastapi.testclient import TestClient

from inference_service.app import create_app
from inference_service.settings import Settings


def test_not_ready_until_models_are_loaded(model_repository, tabular, rows) -> None:
    app = create_app(Settings(model_repository=model_repository, auth_enabled=False, access_log=False))
    client = TestClient(app, raise_server_exceptions=False)  # not entered: the lifespan has not run
    assert client.get("/v2/health/live").status_code == 200
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503 and ready.json() == {"ready": False}
    assert client.get("/v2/models/breast-cancer/ready").status_code == 503
    loading = client.post("/v2/models/breast-cancer/infer", json=tabular(rows(1)))
    assert loading.status_code == 503 and "loading" in loading.json()["error"]
    with client:
        deadline = time.monotonic() + 30
        while client.get("/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.get("/v2/models/breast-cancer/ready").json()["ready"] is True
        assert client.post("/v2/models/breast-cancer/infer", json=tabular(rows(1))).status_code == 200


def test_a_model_that_fails_to_load_fails_liveness(model_repository, tmp_path) -> None:
    broken = tmp_path / "repo"
    shutil.copytree(model_repository / "breast-cancer/1", broken / "breast-cancer/1")
    (broken / "breast-cancer/1/model.onnx").write_bytes(b"not an onnx model")
    app = create_app(Settings(model_repository=broken, auth_enabled=False, access_log=False))
    with TestClient(app) as client:
        deadline = time.monotonic() + 10
        while client.get("/v2/health/live").status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.get("/v2/health/ready").status_code == 503


def test_bad_configuration_fails_fast_with_a_clear_message(model_repository, tmp_path) -> None:
    import pytest

    with pytest.raises(ValueError, match="does not exist"):
        create_app(Settings(model_repository=tmp_path / "none", auth_enabled=False))
    with pytest.raises(ValueError, match="versions on disk: 1, 2"):
        create_app(Settings(model_repository=model_repository, models="breast-cancer:9", auth_enabled=False))
    with pytest.raises(ValueError, match="name:version"):
        Settings(models="breast-cancer")


def test_metrics_cover_latency_cache_batches_and_load(
    make_client, tabular, rows, read_metric, read_metrics
) -> None:
    with make_client() as client:
        client.post("/v2/models/breast-cancer/infer", json=tabular(rows(3, seed=601)))
        client.post("/v2/models/breast-cancer/infer", json=tabular(rows(3, seed=601)))
        client.post("/v2/models/nope/infer", json=tabular(rows(1)))
        text = read_metrics(client)
        route = "/v2/models/{model_name}/infer"
        assert (
            read_metric(
                client,
                "inference_request_duration_seconds_count",
                route=route,
                model="breast-cancer",
                status="2xx",
            )
            == 2
        )
        # An unknown name gets the one bounded label value, not a series of its own.
        unknown = {"route": route, "model": "(unknown)", "status": "4xx"}
        assert read_metric(client, "inference_request_duration_seconds_count", **unknown) == 1
        assert 'model="nope"' not in text
        assert read_metric(client, "inference_batch_size_count", model="breast-cancer") >= 1
        assert (
            read_metric(client, "inference_batch_size_sum", model="breast-cancer") == 3
        )  # warm-up bypasses it
        assert read_metric(client, "inference_model_load_seconds", model="breast-cancer", version="1") > 0
        assert (
            read_metric(
                client, "inference_cache_lookups_total", model="breast-cancer", tier="local", result="hit"
            )
            == 3
        )
        assert "inference_cache_errors_total" in text and "inference_requests_in_flight" in text


def test_server_process_logs_json_and_drains_in_flight_requests_on_sigterm(server_process) -> None:
    with server_process(models="minilm-embedding:1") as (proc, base):
        # A slow request (many long texts) is in flight when SIGTERM arrives; it must still complete.
        texts = [f"sentence number {i} " + "word " * 120 for i in range(48)]
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}
        result: dict[str, httpx.Response] = {}
        sender = threading.Thread(
            target=lambda: result.update(
                r=httpx.post(
                    f"{base}/v2/models/minilm-embedding/infer",
                    json=body,
                    headers={"X-Request-ID": "drain-1"},
                    timeout=30,
                )
            )
        )
        sender.start()
        # SIGTERM once the request is being served (the scrape itself is the other request in flight).
        deadline = time.monotonic() + 20
        while "inference_requests_in_flight 2.0" not in httpx.get(f"{base}/metrics").text:
            assert time.monotonic() < deadline and sender.is_alive()
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        sender.join(30)
        assert result["r"].status_code == 200
        assert result["r"].headers["x-request-id"] == "drain-1"
        # uvicorn shuts down gracefully, then re-raises the signal it caught: exit status -SIGTERM.
        assert proc.wait(30) in (0, -signal.SIGTERM)
        lines = [json.loads(line) for line in proc.stdout.read().splitlines() if line.strip()]  # type: ignore[union-attr]
        access = [
            line for line in lines if line.get("logger") == "access" and line.get("request_id") == "drain-1"
        ]
        assert access and access[0]["status"] == 200 and access[0]["model"] == "minilm-embedding"
        assert access[0]["duration_ms"] > 0


def test_cheap_models_run_on_the_loop_costly_ones_on_their_thread(
    make_client, tabular, rows, read_metric
) -> None:
    batch = rows(4, seed=701)
    with make_client(models="breast-cancer:1,minilm-embedding:1") as client:
        assert read_metric(client, "inference_model_inline", model="breast-cancer") == 1
        assert read_metric(client, "inference_model_inline", model="minilm-embedding") == 0
        on_loop = client.post("/v2/models/breast-cancer/infer", json=tabular(batch)).json()
    with make_client(inline_inference_max_us=0) as client:
        assert read_metric(client, "inference_model_inline", model="breast-cancer") == 0
        on_thread = client.post("/v2/models/breast-cancer/infer", json=tabular(batch)).json()
    assert on_loop == on_thread
