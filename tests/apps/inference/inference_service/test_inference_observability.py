"""What operators read: ISO times and request ids in every line, the audit status, process and build metrics,
KServe V1's model list."""

from __future__ import annotations

import json
import logging
import re

import onnxruntime

from inference_service import __version__
from inference_service.logs import REQUEST_ID, JsonFormatter

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_v1_lists_the_served_models(make_client) -> None:
    with make_client(models="breast-cancer:1") as client:
        assert client.get("/v1/models").json() == {"models": ["breast-cancer"]}
        assert client.get("/v1/models", headers={"Authorization": ""}).status_code == 401


def test_metrics_include_the_process_and_the_build(make_client, read_metric) -> None:
    with make_client() as client:
        assert read_metric(client, "process_resident_memory_bytes") > 10_000_000
        assert read_metric(client, "process_cpu_seconds_total") > 0
        build = {"version": __version__, "onnxruntime": onnxruntime.__version__}
        assert read_metric(client, "inference_build_info", **build) == 1


def test_access_lines_carry_an_iso_time_and_the_callers_request_id(make_client, capfd) -> None:
    with make_client(access_log=True) as client:
        answer = client.get("/v2/models/breast-cancer", headers={"X-Request-Id": "trace-42"})
        assert answer.headers["x-request-id"] == "trace-42"
        made = client.get("/v2/models/breast-cancer").headers["x-request-id"]  # none sent: one is made
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    access = {line["request_id"]: line for line in lines if line.get("logger") == "access"}
    assert ISO.fullmatch(access["trace-42"]["time"]) and access["trace-42"]["status"] == 200
    assert made in access and made != "trace-42"


def test_log_lines_name_the_request_they_belong_to() -> None:
    record = logging.LogRecord("inference.x", logging.WARNING, __file__, 1, "failed %s", ("it",), None)
    outside = json.loads(JsonFormatter().format(record))
    assert (
        ISO.fullmatch(outside["time"]) and "request_id" not in outside and outside["message"] == "failed it"
    )
    token = REQUEST_ID.set("req-9")
    try:
        assert json.loads(JsonFormatter().format(record))["request_id"] == "req-9"
    finally:
        REQUEST_ID.reset(token)
