"""The gRPC endpoint driven by unchanged third-party clients: tritonclient.grpc, and tritonclient's own
generated stub (tritonclient.grpc.service_pb2) for typed `contents`, against the real service process
(`python -m inference_service`) with a real redis-server.

Every answer is checked against an independent source: a direct onnxruntime run of the model file, or the
REST endpoint of the same process for the same rows (which its own tests check against onnxruntime); every
refusal against the status code it must have and the one-line message REST gives the same request.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from inference_service.local import RedisProcess
from tests.support.processes import free_port
from tests.support.service import running_service

KEYS = "ci:ci-key-0123456789,admin:admin-key-0123456789"
POLICY = {
    "api_keys": {
        "ci": {"models": ["breast-cancer:1"], "actions": ["infer", "metadata"]},
        "admin": {"models": ["*"], "actions": ["infer", "metadata"]},
    }
}
METRICS_TOKEN = "grpc-test-metrics-token-0123"
ADMIN = {"authorization": "Bearer admin-key-0123456789"}
CI = {"x-api-key": "ci-key-0123456789"}
MAX_RECEIVE = 256 * 1024
RPC_INFER = "/inference.GRPCInferenceService/ModelInfer"


@dataclass
class Service:
    http: httpx.Client
    grpc_url: str
    log: Path

    def metric(self, name: str, **labels: str) -> float:
        text = self.http.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}).text
        total = 0.0
        for line in text.splitlines():
            head, _, value = line.rpartition(" ")
            metric, _, label_text = head.partition("{")
            found = dict(p.split("=", 1) for p in label_text.rstrip("}").split(",") if p)
            if metric == name and all(found.get(k, "").strip('"') == v for k, v in labels.items()):
                total += float(value)
        return total


@contextmanager
def start(model_repository: Path, tmp: Path, **settings: str) -> Iterator[Service]:
    """The service process with API keys, an access policy, HTTP and gRPC on free loopback ports."""
    grpc_port = free_port()
    log = tmp / "stdout.log"
    with (
        running_service(
            model_repository,
            settings={
                "models": "breast-cancer:1,minilm-embedding:1",
                "grpc_port": grpc_port,
                "grpc_max_receive_bytes": MAX_RECEIVE,
                "api_keys": KEYS,
                "access_policy": json.dumps(POLICY),
                "metrics_token": METRICS_TOKEN,
                "audit_log": tmp / "audit.log",
                **settings,
            },
            grace_s=30,
            stdout=log,
            stderr=subprocess.STDOUT,
        ) as running,
        httpx.Client(base_url=running.base, timeout=30) as http,
    ):
        yield Service(http, f"127.0.0.1:{grpc_port}", log)


@pytest.fixture(scope="module")
def service(
    model_repository: Path, redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """Redis for every model and no in-process tier: a row's result is shared only through Redis."""
    with start(
        model_repository,
        tmp_path_factory.mktemp("grpc"),
        redis_url=redis_server.url,
        redis_min_inference_us="0",
        local_cache_entries="0",
    ) as running:
        yield running


@pytest.fixture
def client(service: Service) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(url=service.grpc_url)
    yield c
    c.close()


@pytest.fixture
def stub(service: Service) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(service.grpc_url) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def onnxruntime_run(model_repository: Path, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(str(model_repository / "breast-cancer/1/model.onnx"))
    labels, probabilities = session.run(None, {"input": rows})
    return labels, probabilities


def rows_of(seed: int, count: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, 30)).astype(np.float32)


def raw_input(rows: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)  # raw_input_contents, as tritonclient always sends
    return tensor


def test_health_and_metadata(service: Service, client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    server = client.get_server_metadata(headers=ADMIN, as_json=True)
    assert server["name"] == service.http.get("/v2", headers=ADMIN).json()["name"]
    assert client.is_model_ready("breast-cancer", headers=ADMIN)
    assert client.is_model_ready("breast-cancer", "1", headers=ADMIN)
    meta = client.get_model_metadata("breast-cancer", headers=ADMIN, as_json=True)
    rest = service.http.get("/v2/models/breast-cancer", headers=ADMIN).json()
    assert meta["name"] == rest["name"] and meta["versions"] == rest["versions"]
    assert meta["platform"] == rest["platform"]
    for side in ("inputs", "outputs"):  # protobuf's JSON writes int64 shapes as strings
        got = [{**t, "shape": [int(d) for d in t["shape"]]} for t in meta[side]]
        assert got == rest[side]
    with grpc.insecure_channel(service.grpc_url) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "inference.GRPCInferenceService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("count", [1, 5])
@pytest.mark.parametrize("version", ["", "1"])
def test_raw_infer_matches_onnxruntime(
    model_repository: Path, client: triton.InferenceServerClient, count: int, version: str
) -> None:
    rows = rows_of(count, count)
    labels, probabilities = onnxruntime_run(model_repository, rows)
    result = client.infer(
        "breast-cancer", [raw_input(rows)], model_version=version, request_id="r-1", headers=CI
    )
    reply = result.get_response()
    assert reply.id == "r-1" and reply.model_version == "1"
    assert len(reply.raw_output_contents) == 2  # asked raw, answered raw
    assert result.as_numpy("label").tolist() == labels.tolist()
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-6)


def test_typed_infer_matches_onnxruntime(
    model_repository: Path, stub: service_pb2_grpc.GRPCInferenceServiceStub
) -> None:
    rows = rows_of(11, 4)
    labels, probabilities = onnxruntime_run(model_repository, rows)
    request = service_pb2.ModelInferRequest(model_name="breast-cancer", id="typed")
    tensor = request.inputs.add(name="input", datatype="FP32", shape=[4, 30])
    tensor.contents.fp32_contents.extend(rows.ravel().tolist())
    reply = stub.ModelInfer(request, metadata=tuple(CI.items()))
    assert not reply.raw_output_contents  # asked typed, answered typed
    outputs = {o.name: o for o in reply.outputs}
    assert (
        list(outputs["label"].shape) == [4]
        and list(outputs["label"].contents.int64_contents) == labels.tolist()
    )
    assert list(outputs["probabilities"].shape) == [4, 2]
    np.testing.assert_allclose(
        outputs["probabilities"].contents.fp32_contents, probabilities.ravel(), rtol=1e-6
    )


def test_text_raw_and_typed_match_rest(
    service: Service, client: triton.InferenceServerClient, stub: service_pb2_grpc.GRPCInferenceServiceStub
) -> None:
    texts = ["a cat sits on the mat", "ein Hund läuft über die Wiese"]
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": texts}]}
    rest = service.http.post("/v2/models/minilm-embedding/infer", json=body, headers=ADMIN).json()
    expected = np.asarray(rest["outputs"][0]["data"], dtype=np.float32).reshape(2, 384)
    tensor = triton.InferInput("text", [2], "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
    raw = client.infer("minilm-embedding", [tensor], headers=ADMIN).as_numpy("embedding")
    np.testing.assert_allclose(raw, expected, rtol=1e-5, atol=1e-6)
    request = service_pb2.ModelInferRequest(model_name="minilm-embedding")
    typed = request.inputs.add(name="text", datatype="BYTES", shape=[2])
    typed.contents.bytes_contents.extend(t.encode() for t in texts)
    reply = stub.ModelInfer(request, metadata=tuple(ADMIN.items()))
    np.testing.assert_allclose(
        np.asarray(reply.outputs[0].contents.fp32_contents).reshape(2, 384), expected, rtol=1e-5, atol=1e-6
    )


def rest_error(
    service: Service, model: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, str]:
    response = service.http.post(f"/v2/models/{model}/infer", json=body, headers=headers)
    return response.status_code, response.json()["error"]


def test_refusals_have_the_right_status_and_rests_message(
    service: Service, client: triton.InferenceServerClient
) -> None:
    rows = rows_of(3, 2)
    wide = triton.InferInput("input", [2, 29], "FP32")
    wide.set_data_from_numpy(rows[:, :29].copy())
    double = triton.InferInput("input", [2, 30], "FP64")
    double.set_data_from_numpy(rows.astype(np.float64))
    json_input = {"name": "input", "datatype": "FP32", "shape": [2, 30], "data": rows.ravel().tolist()}
    cases = [  # (what, model, inputs, headers, gRPC status, the REST request with the same fault, its status)
        ("bad shape", "breast-cancer", [wide], CI, "INVALID_ARGUMENT",
         {**json_input, "shape": [2, 29], "data": rows[:, :29].ravel().tolist()}, 400),
        ("wrong dtype", "breast-cancer", [double], CI, "INVALID_ARGUMENT",
         {**json_input, "datatype": "FP64"}, 400),
        ("unknown model", "no-such-model", [raw_input(rows)], ADMIN, "NOT_FOUND", json_input, 404),
        ("no credentials", "breast-cancer", [raw_input(rows)], {}, "UNAUTHENTICATED", json_input, 401),
        ("unknown key", "breast-cancer", [raw_input(rows)], {"x-api-key": "nope"}, "UNAUTHENTICATED",
         json_input, 401),
        ("forbidden model", "minilm-embedding", [raw_input(rows)], CI, "PERMISSION_DENIED", json_input, 403),
    ]  # fmt: skip
    for what, model, inputs, headers, status, rest_input, rest_status in cases:
        with pytest.raises(InferenceServerException) as raised:
            client.infer(model, inputs, headers=headers)
        assert raised.value.status() == f"StatusCode.{status}", what
        http_status, message = rest_error(service, model, {"inputs": [rest_input]}, headers)
        assert http_status == rest_status, what
        assert raised.value.message() == message, what


def test_a_message_over_the_limit_is_refused(client: triton.InferenceServerClient) -> None:
    rows = rows_of(5, MAX_RECEIVE // (30 * 4) + 1)  # just over the receive limit
    with pytest.raises(InferenceServerException) as raised:
        client.infer("breast-cancer", [raw_input(rows)], headers=CI)
    assert raised.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert str(MAX_RECEIVE) in raised.value.message()
    assert client.is_server_ready()  # and the server serves on


def test_rest_and_grpc_share_the_redis_entries(
    service: Service, client: triton.InferenceServerClient
) -> None:
    rows = rows_of(21, 3)
    body = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 30], "data": rows.ravel().tolist()}]
    }
    assert service.http.post("/v2/models/breast-cancer/infer", json=body, headers=ADMIN).status_code == 200
    computed = service.metric("inference_rows_computed_total", model="breast-cancer")
    hits = service.metric("inference_cache_lookups_total", model="breast-cancer", tier="redis", result="hit")
    deadline = time.monotonic() + 5
    while True:  # REST stores its rows in Redis in the background
        client.infer("breast-cancer", [raw_input(rows)], headers=ADMIN)
        now = service.metric(
            "inference_cache_lookups_total", model="breast-cancer", tier="redis", result="hit"
        )
        if now - hits == 3 or time.monotonic() > deadline:
            break
        computed = service.metric("inference_rows_computed_total", model="breast-cancer")
        hits = now
        time.sleep(0.1)
    assert now - hits == 3  # every row from the entries the REST request wrote
    assert service.metric("inference_rows_computed_total", model="breast-cancer") == computed


def test_metrics_and_access_log_name_the_protocol(
    service: Service, client: triton.InferenceServerClient
) -> None:
    before = service.metric(
        "inference_request_duration_seconds_count", route=RPC_INFER, protocol="grpc", status="4xx"
    )
    with pytest.raises(InferenceServerException):
        client.infer("no-such-model", [raw_input(rows_of(1, 1))], headers=ADMIN, request_id="x")
    after = service.metric(
        "inference_request_duration_seconds_count", route=RPC_INFER, protocol="grpc", status="4xx"
    )
    assert after == before + 1
    assert service.metric("inference_request_duration_seconds_count", model="(unknown)", protocol="grpc") >= 1
    deadline = time.monotonic() + 5
    lines: list[dict[str, Any]] = []
    while not lines and time.monotonic() < deadline:
        lines = [
            json.loads(line)
            for line in service.log.read_text().splitlines()
            if '"logger":"access"' in line and '"grpc_status":"NOT_FOUND"' in line
        ]
        time.sleep(0.05)
    assert lines and lines[-1]["path"] == RPC_INFER and lines[-1]["status"] == 404
    assert lines[-1]["protocol"] == "grpc" and lines[-1]["model"] == "no-such-model"


def test_quota_and_shared_batches(model_repository: Path, redis_server: RedisProcess, tmp_path: Path) -> None:
    """A quota counts gRPC and REST requests of one caller together; rows of a gRPC and a REST request sent
    at once run in one batch (a wait long enough for both to queue)."""
    jobs_db = f"{redis_server.url.rsplit('/', 1)[0]}/9"
    if time.time() % 60 > 50:  # the quota's minute window must not roll over during the test
        time.sleep(60 - time.time() % 60)
    settings = {"jobs_redis_url": jobs_db, "quota_requests_per_minute": "4", "max_batch_wait_ms": "300"}
    with start(model_repository, tmp_path, models="breast-cancer:1", **settings) as service:
        batches = service.metric("inference_batch_size_count", model="breast-cancer")
        batch_rows = service.metric("inference_batch_size_sum", model="breast-cancer")
        rows = rows_of(40, 2)
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": rows[0].tolist()}]}
        statuses: list[int] = []

        def post() -> None:
            statuses.append(
                service.http.post("/v2/models/breast-cancer/infer", json=body, headers=ADMIN).status_code
            )

        rest = threading.Thread(target=post)
        with triton.InferenceServerClient(url=service.grpc_url) as client:
            rest.start()
            client.infer("breast-cancer", [raw_input(rows[1:])], headers=ADMIN)
            rest.join()
            assert statuses == [200]
            assert service.metric("inference_batch_size_count", model="breast-cancer") == batches + 1
            assert service.metric("inference_batch_size_sum", model="breast-cancer") == batch_rows + 2
            client.infer("breast-cancer", [raw_input(rows[1:])], headers=ADMIN)  # the 3rd request this minute
            service.http.post("/v2/models/breast-cancer/infer", json=body, headers=ADMIN)  # the 4th
            with pytest.raises(InferenceServerException) as raised:
                client.infer("breast-cancer", [raw_input(rows[1:])], headers=ADMIN)
            assert raised.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
            assert raised.value.message().startswith("quota exceeded: 4 requests per minute")
