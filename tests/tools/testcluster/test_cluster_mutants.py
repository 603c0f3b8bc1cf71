"""Each class of break the cluster rejects is rejected by the real control plane AND by the gate first.

The cluster side applies the mutated environment (in a namespace of its own) to the session's apiserver with
its controllers running; the gate side runs `make check`'s engine (python -m policy_check) on a dist/ copy.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testcluster.apply import expected_warnings
from testcluster.kubeapi import Kube
from testcluster.run import check_environment
from tests.support.manifests import first

from .conftest import REPO, Docs


def inference(docs: Docs) -> dict[str, Any]:
    return first(docs, "Deployment", "inference")


def container(docs: Docs) -> dict[str, Any]:
    c: dict[str, Any] = inference(docs)["spec"]["template"]["spec"]["containers"][0]
    return c


def memory_limit_below_request(docs: Docs) -> None:
    container(docs)["resources"]["requests"]["memory"] = "768Mi"
    container(docs)["resources"]["limits"]["memory"] = "256Mi"


def thirty_replicas(docs: Docs) -> None:
    inference(docs)["spec"]["replicas"] = 30


def forbidden_sysctl(docs: Docs) -> None:
    sc = inference(docs)["spec"]["template"]["spec"]["securityContext"]
    sc["sysctls"] = [{"name": "kernel.msgmax", "value": "65536"}]


def unknown_custom_resource_field(docs: Docs) -> None:
    first(docs, "ExternalSecret")["spec"]["refreshEvery"] = "1h"


def wrong_custom_resource_type(docs: Docs) -> None:
    first(docs, "ExternalSecret")["spec"]["data"][0]["remoteRef"] = "mlplatform/redis"


CASES: dict[str, tuple[Callable[[Docs], None], str, str]] = {
    # name: (change, what the cluster says, the gate's rule that must fail, as `make check` names it)
    "limit below request": (
        memory_limit_below_request,
        "must be less than or equal to memory limit",
        "limits-cover-requests",
    ),
    "quota exhausted at max replicas": (thirty_replicas, "exceeded quota", "quota-admits-max-scale"),
    "pod security: forbidden sysctl": (
        forbidden_sysctl,
        'would violate PodSecurity "restricted:v1.33"',
        "pod-security",
    ),
    "custom resource: unknown field": (
        unknown_custom_resource_field,
        "spec.refreshEvery: field not declared in schema",
        "crd-schema",
    ),
    "custom resource: wrong type": (wrong_custom_resource_type, "remoteRef", "crd-schema"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_cluster_and_the_gate_both_reject(
    case: str, kube: Kube, mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]], tmp_path: Path
) -> None:
    change, cluster_says, gate_rule = CASES[case]
    gate_dist, cluster_folder = mutant("dev", change)

    result = check_environment(kube, cluster_folder, expected=expected_warnings(), boot_check=False)
    assert any(cluster_says in f for f in result.failures), result.failures
    assert gate_rule in gate_failures(gate_dist, "dev", tmp_path)


def gate_failures(gate_dist: Path, env: str, tmp_path: Path) -> list[str]:
    """The rules `python -m policy_check` reports failed for `env` of `gate_dist` (it must fail)."""
    command = [sys.executable, "-m", "policy_check", "--reports", str(tmp_path / "reports")]
    command += ["--dist", str(gate_dist), "--env", env]
    gate = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert gate.returncode != 0, gate.stdout + gate.stderr
    return [line.split()[1].rstrip(":") for line in gate.stdout.splitlines() if line.startswith("  FAIL ")]


def default_deny_without_egress(docs: Docs) -> None:
    first(docs, "NetworkPolicy", "default-deny")["spec"]["policyTypes"] = ["Ingress"]


def node_port(docs: Docs) -> None:
    first(docs, "Service", "inference")["spec"]["type"] = "NodePort"


#: Breaks the apiserver admits (no Kyverno webhook runs in the test control plane): only the gate stops them.
ADMITTED: dict[str, tuple[Callable[[Docs], None], str]] = {
    "default deny without Egress": (default_deny_without_egress, "default-deny"),
    "Service of type NodePort": (node_port, "restrict-service-types"),
}


@pytest.mark.parametrize("case", sorted(ADMITTED))
def test_the_cluster_admits_what_the_gate_stops(
    case: str, kube: Kube, mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]], tmp_path: Path
) -> None:
    change, gate_rule = ADMITTED[case]
    gate_dist, cluster_folder = mutant("dev", change)
    result = check_environment(kube, cluster_folder, expected=expected_warnings(), boot_check=False)
    assert result.failures == []
    assert gate_rule in gate_failures(gate_dist, "dev", tmp_path)


def test_the_unchanged_environment_is_admitted_at_maximum_scale(
    kube: Kube, mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]]
) -> None:
    _, folder = mutant("prod", lambda docs: None)
    result = check_environment(kube, folder, expected=expected_warnings(), boot_check=False)
    assert result.failures == []
    # prod: KEDA max 12 + surge 1, the canary 1 + surge 1, Redis 2 (read from the manifests by the harness)
    assert sum(result.pods.values()) >= 12 + 1 + 1 + 1 + 2
