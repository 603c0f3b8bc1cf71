"""Issue 29 point 5: the autoscaling signal per environment (`autoscaling.signal`: cpu, inFlight or
requestRate).

Expected values come from the overlay YAML as written (read here with PyYAML), from the other objects of the
same environment (the Service the query names must select exactly the scaled Deployment's pods, and a
ServiceMonitor must scrape it), from the Prometheus Operator's target labels (`namespace`, `service`) and
from KEDA's prometheus scaler semantics (AverageValue: the query's total divided by the replicas), never from
the generator's code. That the query reads series the service really exports is checked against the running
service in tests/apps/inference/inference_service/test_inference_load_signals.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.schema.overlay import (
    DEFAULT_PROMETHEUS_ADDRESS,
    DEFAULT_TARGET_CPU_UTILIZATION,
    DEFAULT_TARGET_IN_FLIGHT,
)
from mlplatform.synth import render

Objects = dict[str, list[dict[str, Any]]]
#: `sum(rate(<metric>{<matchers>}[<window>]))`: what a load signal's query must be
QUERY = re.compile(r"^sum\(rate\((?P<metric>[a-z_]+)\{(?P<matchers>[^}]*)\}\[(?P<window>[0-9]+[sm])\]\)\)$")
MATCHER = re.compile(r'(?P<label>[a-z_]+)(?P<op>!?=)"(?P<value>[^"]*)"')


def overlay(root: Path, env: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((root / "overlays" / f"{env}.yaml").read_text())
    return data


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def matchers(query: str) -> tuple[str, dict[tuple[str, str], str], str]:
    found = QUERY.match(query)
    assert found, query
    pairs = {(m["label"], m["op"]): m["value"] for m in MATCHER.finditer(found["matchers"])}
    assert ",".join(f'{k}{op}"{v}"' for (k, op), v in pairs.items()) == found["matchers"], query
    return found["metric"], pairs, found["window"]


def duration_s(text: str) -> int:
    return int(text[:-1]) * {"s": 1, "m": 60}[text[-1]]


def check_load_trigger(objs: list[dict[str, Any]], namespace: str, scaling: dict[str, Any]) -> dict[str, Any]:
    """The environment's ScaledObject reads the declared signal of the pods it scales, and only those."""
    (scaled,) = [s for s in of_kind(objs, "ScaledObject") if s["metadata"]["name"] == scaling["service"]]
    spec = scaled["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (
        scaling["minReplicas"],
        scaling["maxReplicas"],
    )
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metricType"] == "AverageValue"  # the query's total over the pods, divided by the replicas
    meta = trigger["metadata"]
    assert set(meta) == {"serverAddress", "query", "threshold"}
    assert meta["serverAddress"] == scaling.get("prometheusAddress", DEFAULT_PROMETHEUS_ADDRESS)
    metric, pairs, window = matchers(meta["query"])
    # inFlight: request-seconds per second (the histogram's _sum); requestRate: requests per second (_count)
    suffix = {"inFlight": "_sum", "requestRate": "_count"}[scaling["signal"]]
    assert metric == f"inference_request_duration_seconds{suffix}"
    assert pairs[("namespace", "=")] == namespace
    assert pairs[("model", "!=")] == ""  # requests that name a model: no probes, scrapes, server metadata
    # the window spans at least two scrapes of the ServiceMonitor that feeds it
    (monitor,) = [m for m in of_kind(objs, "ServiceMonitor") if m["metadata"]["name"] == scaling["service"]]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert duration_s(window) >= 2 * duration_s(endpoint["interval"])
    # the `service` label the Prometheus Operator gives each target is its Service's name: that Service must
    # select exactly the scaled Deployment's pods, and the ServiceMonitor must pick that Service
    target = spec["scaleTargetRef"]
    assert target["kind"] == "Deployment"
    (deployment,) = [d for d in of_kind(objs, "Deployment") if d["metadata"]["name"] == target["name"]]
    (service,) = [s for s in of_kind(objs, "Service") if s["metadata"]["name"] == pairs[("service", "=")]]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    others = [
        d["metadata"]["name"]
        for d in of_kind(objs, "Deployment")
        if d is not deployment
        and service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert not others, f"the query's Service also selects {others}"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [namespace]
    # Prometheus unreadable: KEDA holds the current count (never below the minimum) instead of scaling blind
    assert spec["fallback"] == {
        "failureThreshold": 3,
        "replicas": scaling["minReplicas"],
        "behavior": "currentReplicasIfHigher",
    }
    return meta


def test_prod_scales_on_requests_in_flight(objects: Objects, repo_root: Path) -> None:
    data = overlay(repo_root, "prod")
    scaling = data["services"]["inference"]["autoscaling"]
    assert (scaling["engine"], scaling["signal"]) == ("keda", "inFlight")
    assert data["features"]["serviceMonitor"] is True
    meta = check_load_trigger(objects["prod"], data["namespace"], {**scaling, "service": "inference"})
    # no targetInFlight in prod.yaml: the measured default
    assert "targetInFlight" not in scaling
    assert float(meta["threshold"]) == DEFAULT_TARGET_IN_FLIGHT


def test_stage_keeps_the_cpu_hpa(objects: Objects, repo_root: Path) -> None:
    scaling = overlay(repo_root, "stage")["services"]["inference"]["autoscaling"]
    assert scaling.get("signal", "cpu") == "cpu" and scaling["engine"] == "hpa"
    (hpa,) = of_kind(objects["stage"], "HorizontalPodAutoscaler")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": DEFAULT_TARGET_CPU_UTILIZATION},
    }
    assert not [s for s in of_kind(objects["stage"], "ScaledObject") if s["metadata"]["name"] == "inference"]


def _render_stage(root: Path, edit_yaml: Any, scaling: dict[str, Any]) -> list[dict[str, Any]]:
    def change(data: dict[str, Any]) -> None:
        data["services"]["inference"]["autoscaling"] = scaling

    edit_yaml(root / "overlays" / "stage.yaml", change)
    rendered = render(root)
    return [yaml.safe_load(c) for n, c in rendered.folders["stage"].items() if n.endswith(".yaml")]


@pytest.mark.parametrize(
    ("scaling", "threshold"),
    [
        (  # its own target and Prometheus
            {
                "signal": "requestRate",
                "targetRequestRate": 2500,
                "prometheusAddress": "https://prometheus.observability.svc:9091/prom",
            },
            "2500",
        ),
        ({"signal": "inFlight", "targetInFlight": 2.5}, "2.5"),  # a decimal target
    ],
)
def test_a_load_signal_with_its_settings(
    spec_copy: Path, edit_yaml: Any, scaling: dict[str, Any], threshold: str
) -> None:
    scaling = {"engine": "keda", "minReplicas": 2, "maxReplicas": 5, **scaling}
    objs = _render_stage(spec_copy, edit_yaml, scaling)
    namespace = overlay(spec_copy, "stage")["namespace"]
    meta = check_load_trigger(objs, namespace, {**scaling, "service": "inference"})
    assert meta["threshold"] == threshold
    assert not of_kind(objs, "HorizontalPodAutoscaler")


@pytest.mark.parametrize("signal", [{}, {"signal": "cpu"}])
def test_keda_on_cpu_is_unchanged(spec_copy: Path, edit_yaml: Any, signal: dict[str, str]) -> None:
    scaling = {"engine": "keda", "minReplicas": 2, "maxReplicas": 4, "targetCpuUtilization": 50, **signal}
    objs = _render_stage(spec_copy, edit_yaml, scaling)
    (scaled,) = [s for s in of_kind(objs, "ScaledObject") if s["metadata"]["name"] == "inference"]
    assert scaled["spec"]["triggers"] == [
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}
    ]
    assert "fallback" not in scaled["spec"]  # KEDA's fallback is for AverageValue metrics, not cpu


def test_the_diagram_names_a_load_signal(rendered: Any, repo_root: Path) -> None:
    for env in ("prod", "stage"):
        scaling = overlay(repo_root, env)["services"]["inference"]["autoscaling"]
        bounds = f"{scaling['engine']} {scaling['minReplicas']}-{scaling['maxReplicas']}"
        signal = scaling.get("signal", "cpu")
        drawn = bounds if signal == "cpu" else f"{bounds} on {signal}"
        assert f'<br/>{drawn}"]' in rendered.folders[env]["ARCHITECTURE.md"], env
