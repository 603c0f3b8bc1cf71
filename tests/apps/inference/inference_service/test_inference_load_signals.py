"""The autoscaler's load signals read series this service really exports (issue 29 point 5).

The PromQL of each KEDA prometheus trigger (the committed dist/ and the generator's requestRate form) is
evaluated by hand on scrapes of the running service, before and after known traffic: its series exist, carry
the labels the query filters on, and grow by exactly the requests that name a model (REST and gRPC), not by
probes, scrapes or server metadata. Prometheus adds `namespace` and `service` itself (the Prometheus
Operator's target labels); the service's own series must not carry them.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tritonclient.grpc as grpcclient
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mlplatform.components.inference import load_query
from mlplatform.schema.overlay import Autoscaling
from tests.support.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[4]
TARGET_LABELS = {"namespace", "service"}  # set by Prometheus from the scrape target, not by the service
QUERY = re.compile(r"^sum\(rate\((?P<metric>[a-z_]+)\{(?P<matchers>[^}]*)\}\[[0-9]+[sm]\]\)\)$")
MATCHER = re.compile(r'(?P<label>[a-z_]+)(?P<op>!?=)"(?P<value>[^"]*)"')


def committed_queries() -> dict[str, str]:
    """file -> query, for every prometheus trigger in dist/."""
    found = {}
    for path in sorted((REPO_ROOT / "dist").glob("*/scaledobject-*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for trigger in doc["spec"]["triggers"]:
            if trigger["type"] == "prometheus":
                found[str(path.relative_to(REPO_ROOT))] = trigger["metadata"]["query"]
    return found


def evaluate(text: str, query: str) -> float:
    """The query's value over one scrape, without rate(): the sum of the matching samples' values."""
    parsed = QUERY.match(query)
    assert parsed, query
    matchers = [(m["label"], m["op"], m["value"]) for m in MATCHER.finditer(parsed["matchers"])]
    total, matched = 0.0, 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != parsed["metric"]:
                continue
            assert not TARGET_LABELS & set(sample.labels), sample  # Prometheus's labels would clash
            ok = all(
                (sample.labels.get(label, "") == value) == (op == "=")
                for label, op, value in matchers
                if label not in TARGET_LABELS
            )
            if ok:
                total += sample.value
                matched += 1
    assert matched, f"no series of the running service matches {query}"
    return total


def test_the_load_queries_count_exactly_the_requests_that_name_a_model(server_process, tabular, rows) -> None:
    committed = committed_queries()
    assert committed, "no environment in dist/ scales on a load signal"
    queries = {
        **committed,
        "requestRate": load_query(
            Autoscaling.model_validate(
                {"engine": "keda", "signal": "requestRate", "minReplicas": 1, "maxReplicas": 2}
            ),
            namespace="ns",
            service="inference",
        ),
    }
    for name, query in queries.items():
        kind = "_count" if name == "requestRate" or "_count{" in query else "_sum"
        assert f"inference_request_duration_seconds{kind}{{" in query, name
    grpc_port = free_port()
    with server_process(models="breast-cancer:1", grpc_port=str(grpc_port)) as (_, base):
        # one request first, so every series the queries read exists before the baseline scrape
        assert httpx.post(f"{base}/v2/models/breast-cancer/infer", json=tabular(rows(1))).status_code == 200
        before = httpx.get(f"{base}/metrics").text
        spent: list[float] = []

        def timed(call: Any) -> Any:
            started = time.perf_counter()
            result = call()
            spent.append(time.perf_counter() - started)
            return result

        for i in range(10):
            body = tabular(rows(1, seed=100 + i))
            response = timed(lambda body=body: httpx.post(f"{base}/v2/models/breast-cancer/infer", json=body))
            assert response.status_code == 200
        assert timed(lambda: httpx.get(f"{base}/v2/models/breast-cancer")).status_code == 200  # names a model
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        for i in range(3):
            tensor = grpcclient.InferInput("input", [1, 30], "FP32")
            tensor.set_data_from_numpy(np.array(rows(1, seed=200 + i), dtype=np.float32))
            timed(lambda tensor=tensor: client.infer("breast-cancer", [tensor]))
        client.close()
        # none of these names a model: probes, server metadata, scrapes
        for path in ("/v2/health/ready", "/v2/health/live", "/v2", "/metrics"):
            for _ in range(3):
                assert httpx.get(f"{base}{path}").status_code == 200
        after = httpx.get(f"{base}/metrics").text
    for name, query in queries.items():
        grown = evaluate(after, query) - evaluate(before, query)
        if "_count{" in query:  # requestRate: one per request that names a model, REST and gRPC alike
            assert grown == 10 + 1 + 3, name
        else:  # inFlight: the request-seconds the server spent on them, at most what the client waited
            assert 0 < grown <= sum(spent), name
