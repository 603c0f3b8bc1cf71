"""The NetworkPolicy matrix of the node test (testcluster.node_matrix): the expected matrix as the spec
declares it (overlays/, read by the gate's reader), the probes' outcomes, the printed matrix and its
differences, and the mutants' edits of dist/'s NetworkPolicies. The live run (the matrix observed on a real
node, the mutants seen) is `make node-test` itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from policy_check import declared
from testcluster.node_matrix import (
    KUBE_DNS,
    Cell,
    Endpoint,
    Port,
    allowed,
    canaries,
    cells,
    component_of,
    differences,
    dns_endpoint,
    expected_matrix,
    format_matrix,
    outcome,
    widened,
    without_dns_egress,
)

REPO = Path(__file__).resolve().parents[3]
HTTP, GRPC, REDIS = Port(8080, "TCP", "http"), Port(8081, "TCP", "grpc"), Port(6379, "TCP", "redis")


def spec(env: str) -> dict[str, Any]:
    return declared.for_environment(REPO / "overlays", env)


def ours(name: str, component: str, *ports: Port) -> Endpoint:
    return Endpoint(name=name, component=component, ours=True, address="10.244.0.9", ports=ports)


def outside(name: str, component: str) -> Endpoint:
    return Endpoint(name=name, component=component, ours=False, address="10.244.0.8")


def stage_endpoints() -> tuple[list[Endpoint], list[Endpoint]]:
    pods = [
        ours("inference-a", "inference", HTTP, GRPC),
        ours("inference-b", "inference", HTTP, GRPC),
        ours("inference-worker-c", "inference-worker", HTTP),
        ours("jobs-redis-0", "jobs-redis", REDIS),
        ours("redis-0", "redis", REDIS),
    ]
    peers = [
        outside("ingress-controller", "ingress-controller"),
        outside("keda-operator", "keda-operator"),
        outside("metrics-scraper", "metrics-scraper"),
        outside("another-namespace", ""),
    ]
    return [*pods, *peers], [*pods, dns_endpoint(spec("stage"))]


def test_the_expected_stage_matrix_is_the_declared_connections() -> None:
    sources, destinations = stage_endpoints()
    want = expected_matrix(spec("stage"), sources, destinations)
    allowed_cells = {(c.source, c.target, c.port.number) for c, ok in want.items() if ok}
    assert ("inference-a", "redis-0", 6379) in allowed_cells
    assert ("inference-a", "jobs-redis-0", 6379) in allowed_cells
    assert ("inference-worker-c", "redis-0", 6379) in allowed_cells
    assert ("keda-operator", "jobs-redis-0", 6379) in allowed_cells
    assert ("metrics-scraper", "inference-worker-c", 8080) in allowed_cells
    # the gRPC port: only the connection that says grpc (the ingress controller's), not the scraper's
    assert ("ingress-controller", "inference-a", 8081) in allowed_cells
    assert ("metrics-scraper", "inference-a", 8080) in allowed_cells
    assert ("metrics-scraper", "inference-a", 8081) not in allowed_cells
    # every pod of the namespace resolves names, over UDP and TCP
    for src in sources[:5]:
        assert (src.name, KUBE_DNS, 53) in allowed_cells
    assert sum(1 for c in want if c.target == KUBE_DNS) == 10  # 5 pods x udp/tcp; peers' DNS is not ours
    # nothing else: pod to pod of the same component, Redis to anything, the other namespace to anything
    assert ("inference-a", "inference-b", 8080) not in allowed_cells
    assert ("redis-0", "jobs-redis-0", 6379) not in allowed_cells
    assert not any(c.source == "another-namespace" and ok for c, ok in want.items())
    # DNS 10; inference x2 and the worker to both Redis 6; ingress controller 2 x 2 ports; scraper 3; KEDA 1
    assert sum(want.values()) == 10 + 6 + 4 + 3 + 1


def test_dev_has_no_jobs_flows_and_prod_lets_redis_replicas_replicate() -> None:
    redis = [ours("redis-0", "redis", REDIS), ours("redis-1", "redis", REDIS)]
    keda = outside("keda-operator", "keda-operator")
    jobs = ours("jobs-redis-0", "jobs-redis", REDIS)
    prod = expected_matrix(spec("prod"), redis, redis)
    assert prod == {Cell("redis-0", "redis-1", REDIS): True, Cell("redis-1", "redis-0", REDIS): True}
    dev = expected_matrix(spec("dev"), [*redis, keda], [*redis, jobs])
    assert not any(dev.values())  # one Redis replica in dev, and no jobs Redis (jobs are off)


def test_cells_skip_a_pod_to_itself_and_flows_between_outside_pods() -> None:
    a, b = ours("a", "x", HTTP), outside("b", "y")
    dns = Endpoint(KUBE_DNS, KUBE_DNS, False, "10.96.0.10", (Port(53, "UDP"),))
    assert cells([a, b], [a, b, dns]) == [Cell("a", KUBE_DNS, Port(53, "UDP")), Cell("b", "a", HTTP)]


@pytest.mark.parametrize(
    ("kind", "status", "output", "seen", "verdict"),
    [
        ("tcp", 0, "", "open", True),
        ("tcp", 1, "bash:_connect:_Connection_refused", "refused", True),
        ("tcp", 124, "", "timeout", False),
        ("dns", 0, "10.96.0.1_kubernetes.default.svc.cluster.local", "answered", True),
        ("dns", 2, "", "not-found", True),
        ("dns", 124, "", "timeout", False),
        ("tcp", 126, "bash:_not_found", "error (exit 126: bash:_not_found)", None),
    ],
)
def test_a_probe_outcome(kind: str, status: int, output: str, seen: str, verdict: bool | None) -> None:
    assert outcome(kind, status, output) == seen
    assert allowed(seen) is verdict


def test_differences_and_the_printed_matrix_mark_what_was_not_declared() -> None:
    a, b = ours("inference-a", "inference", HTTP), ours("redis-0", "redis", REDIS)
    want = {Cell("inference-a", "redis-0", REDIS): True, Cell("redis-0", "inference-a", HTTP): False}
    seen = {Cell("inference-a", "redis-0", REDIS): "refused", Cell("redis-0", "inference-a", HTTP): "timeout"}
    assert differences("stage", want, seen) == []
    text = format_matrix("stage", [a, b], [a, b], want, seen)
    assert text.splitlines()[2:] == [
        "  1  inference-a  8080/TCP (http)",
        "  2  redis-0      6379/TCP (redis)",
        "  source            1      2",
        "  inference-a       - allow*",
        "  redis-0        deny      -",
    ]
    seen = {Cell("inference-a", "redis-0", REDIS): "timeout", Cell("redis-0", "inference-a", HTTP): "open"}
    assert differences("stage", want, seen) == [
        "stage: inference-a -> redis-0:6379/TCP (redis): declared allow, observed timeout",
        "stage: redis-0 -> inference-a:8080/TCP (http): declared deny, observed open",
    ]
    rows = format_matrix("stage", [a, b], [a, b], want, seen).splitlines()[-2:]
    assert rows == ["  inference-a       -  DENY!", "  redis-0      ALLOW!      -"]
    assert differences("stage", want, {}) == [
        "stage: inference-a -> redis-0:6379/TCP (redis): declared allow, observed not probed",
        "stage: redis-0 -> inference-a:8080/TCP (http): declared deny, observed not probed",
    ]


def _policy(env: str, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "dist" / env / f"networkpolicy-{name}.yaml").read_text())
    return doc


def test_the_dns_mutant_drops_only_the_dns_egress_rule() -> None:
    dns = _policy("stage", "allow-dns")
    mutated = without_dns_egress(dns)
    assert mutated is not None and mutated["spec"]["egress"] == []
    assert mutated["spec"]["podSelector"] == dns["spec"]["podSelector"]
    assert dns["spec"]["egress"]  # the input is not modified
    assert without_dns_egress(_policy("stage", "allow-inference-to-redis")) is None


def test_the_widened_mutant_opens_the_other_namespace_rule_to_every_pod_keeping_its_ports() -> None:
    policy = _policy("stage", "allow-inference-from-ingress-controller")
    mutated = widened(policy)
    assert mutated is not None
    assert [r["from"] for r in mutated["spec"]["ingress"]] == [[{"namespaceSelector": {}}]]
    assert [r["ports"] for r in mutated["spec"]["ingress"]] == [r["ports"] for r in policy["spec"]["ingress"]]
    assert widened(_policy("stage", "allow-redis-from-inference")) is None  # same namespace only


def test_a_pod_belongs_to_its_owner_s_component_a_canary_to_its_service() -> None:
    prod, dev = spec("prod"), spec("dev")
    assert canaries("prod", REPO / "overlays") == {"inference"}
    assert canaries("dev", REPO / "overlays") == set()
    assert component_of("inference-canary", prod, {"inference"}) == "inference"
    assert component_of("redis", prod, {"inference"}) == "redis"
    assert component_of("inference-canary", dev, set()) == "inference-canary"  # no canary declared: none
    assert component_of("debug-shell", prod, {"inference"}) == "debug-shell"  # no component: nothing declared
