"""The Kubernetes minor is set once, in tools/versions.env (KUBERNETES_VERSION). Each place that must repeat
it as a literal (a Python import name, a YAML annotation, a PSA label value) is checked against that file
here, so a bump that misses one fails."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mlplatform.components import namespace
from testcluster.versions import pinned

ROOT = Path(__file__).resolve().parents[2]
MINOR = pinned("KUBERNETES_VERSION")  # e.g. "1.33"


def test_patch_version_is_of_the_minor() -> None:
    assert pinned("KUBERNETES_PATCH_VERSION").startswith(f"v{MINOR}.")


def test_pod_security_admission_version() -> None:
    assert f"v{MINOR}" == namespace.PSA_VERSION


def test_every_kyverno_policy_names_the_minor() -> None:
    policies = sorted((ROOT / "policies" / "kyverno").glob("*/*.yaml"))
    found = {}
    for path in policies:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            annotations = (doc or {}).get("metadata", {}).get("annotations") or {}
            if "kyverno.io/kubernetes-version" in annotations:
                found[path.relative_to(ROOT)] = annotations["kyverno.io/kubernetes-version"]
    assert found, "no policy carries kyverno.io/kubernetes-version"
    assert {p: v for p, v in found.items() if v != MINOR} == {}


def test_cdk8s_plus_matches_the_minor() -> None:
    """cdk8s-plus ships one package per Kubernetes minor (cdk8s-plus-33 for 1.33)."""
    suffix = MINOR.split(".")[1]
    for pinned_in in ("pyproject.toml", "constraints.txt"):
        names = set(re.findall(r"cdk8s-plus-(\d+)", (ROOT / pinned_in).read_text(encoding="utf-8")))
        assert names == {suffix}, pinned_in
    imports = {
        m
        for path in (ROOT / "constructs").rglob("*.py")
        for m in re.findall(r"cdk8s_plus_(\d+)", path.read_text(encoding="utf-8"))
    }
    assert imports == {suffix}
