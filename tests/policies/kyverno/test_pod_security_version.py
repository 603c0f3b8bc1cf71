"""`podSecurity: {level: restricted, version: v1.32}` is the Restricted profile of Kubernetes 1.33.

Kyverno v1.19.1's ClusterPolicy CRD accepts versions up to v1.32 (and `latest`, which is its fork's newest,
1.34 here), and its CLI silently loads no rule for `v1.33`. Each check of k8s.io/pod-security-admission says
from which minor it applies (`MinimumVersion`); if no check of the 1.33 module starts after 1.32, the profile
at 1.32 and at 1.33 is the same. The upstream module is the independent source; Kyverno's fork (what the
policy runs) must agree with it on every check up to 1.33.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
MINIMUM = re.compile(r"MinimumVersion:\s*api\.MajorMinorVersion\(1, (\d+)\)")


def minimum_versions(root: Path) -> dict[str, set[int]]:
    """Check file -> the minors its versioned implementations start at."""
    return {
        f.name: {int(m) for m in MINIMUM.findall(f.read_text())}
        for f in sorted((root / "policy").glob("check_*.go"))
        if not f.name.endswith("_test.go")
    }


def policy_version() -> int:
    doc = yaml.safe_load((REPO / "policies/kyverno/pod-security/pod-security.yaml").read_text())
    security = doc["spec"]["rules"][0]["validate"]["podSecurity"]
    assert security["level"] == "restricted"
    match = re.fullmatch(r"v1\.(\d+)", security["version"])
    assert match, security["version"]
    return int(match.group(1))


def test_no_check_of_the_pinned_kubernetes_changes_after_the_policy_version(cli: Any) -> None:
    patch = cli.pinned("KUBERNETES_PATCH_VERSION")  # v1.33.13 -> staging module v0.33.13
    minor = int(patch.split(".")[1])
    upstream = minimum_versions(
        cli.go_module("k8s.io/pod-security-admission", "v0." + patch.split(".", 1)[1])
    )
    newest = max(v for vs in upstream.values() for v in vs)
    assert newest <= policy_version() <= minor, (newest, policy_version(), minor)
    assert newest == policy_version(), "pin the newest profile change, not an older one"


def test_kyverno_fork_agrees_with_upstream_up_to_the_pinned_minor(cli: Any) -> None:
    replace = next(
        line
        for line in (REPO / "tools/kyverno/go.mod").read_text().splitlines()
        if "pod-security-admission =>" in line
    )
    name, version = replace.split("=>")[1].split()
    minor = int(cli.pinned("KUBERNETES_PATCH_VERSION").split(".")[1])
    patch = cli.pinned("KUBERNETES_PATCH_VERSION").split(".", 1)[1]
    fork = minimum_versions(cli.go_module(name, version))
    upstream = minimum_versions(cli.go_module("k8s.io/pod-security-admission", "v0." + patch))
    assert set(upstream) <= set(fork)
    for check, versions in upstream.items():
        assert {v for v in fork[check] if v <= minor} == versions, check
