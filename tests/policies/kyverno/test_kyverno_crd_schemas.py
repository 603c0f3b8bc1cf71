"""The shipped policies and the generated PolicyExceptions are valid against Kyverno v1.19.1's own CRDs.

The schemas come from the pinned Kyverno module (config/crds), read by policy_check.crd_schema.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import yaml

from mlplatform import cluster_policies
from policy_check import crd_schema

REPO = Path(__file__).resolve().parents[3]


def waiver(rule: str) -> dict[str, Any]:
    return {
        "environment": "dev",
        "kind": "Deployment",
        "namespace": "mlplatform-dev",
        "name": "inference",
        "rule": rule,
        "reason": "reviewed in PR 1",
        "owner": "team-ml-platform",
        "expires": "2099-12-31",
    }


def test_policies_and_exceptions_are_valid_against_the_pinned_kyverno_crds(tmp_path: Path) -> None:
    shutil.copytree(REPO / "policies/kyverno", tmp_path / "policies/kyverno")
    waivers = {"waivers": [waiver("disable-token-automount"), waiver("pod-security")]}
    (tmp_path / "policies/exceptions.yaml").write_text(yaml.safe_dump(waivers))
    files = cluster_policies.render(tmp_path, protected={"kube-system"}, today=dt.date(2026, 1, 1))
    docs = [(n, yaml.safe_load(t)) for n, t in files.items()]
    kinds = sorted({(d["apiVersion"], d["kind"]) for _, d in docs})
    assert kinds == [
        ("kyverno.io/v1", "ClusterPolicy"),
        ("kyverno.io/v2", "PolicyException"),
        ("policies.kyverno.io/v1", "PolicyException"),
        ("policies.kyverno.io/v1", "ValidatingPolicy"),
    ]
    assert crd_schema.findings(crd_schema.Schemas(REPO), "cluster-policies", docs) == []


def test_a_pod_security_version_the_crd_does_not_allow_is_reported(tmp_path: Path) -> None:
    """v1.33 is not in the CRD's version enum (v1.19 ... v1.32, latest), so the policy says v1.32."""
    source = REPO / "policies/kyverno/pod-security/pod-security.yaml"
    doc = yaml.safe_load(source.read_text())
    doc["spec"]["rules"][0]["validate"]["podSecurity"]["version"] = "v1.33"
    found = crd_schema.findings(crd_schema.Schemas(REPO), "cluster-policies", [("pod-security.yaml", doc)])
    assert found and all("v1.33" in f.message or "version" in f.message for f in found), found
