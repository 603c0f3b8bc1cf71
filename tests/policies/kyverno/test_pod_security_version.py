"""`podSecurity: {level: restricted, version: v1.32}` is the Restricted profile of Kubernetes 1.33.

Kyverno v1.19.1's ClusterPolicy CRD accepts versions up to v1.32 (and `latest`, which is its fork's newest,
1.34 here), and its CLI silently loads no rule for `v1.33`. Each check of k8s.io/pod-security-admission says
from which minor it applies (`MinimumVersion`); if no check of the 1.33 module starts after 1.32, the profile
at 1.32 and at 1.33 is the same. The upstream module is the independent source; Kyverno's fork (what the
policy runs) must agree with it on every check up to 1.33.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
MINIMUM = re.compile(r"MinimumVersion:\s*api\.MajorMinorVersion\(1, (\d+)\)")


def module(name: str, version: str) -> Path:
    out = subprocess.run(
        [str(REPO / "tools/setup/go-module-dir.sh"), name, version],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    if out.returncode != 0:
        pytest.fail(f"cannot fetch {name}@{version}: {out.stderr.strip()}")
    return Path(out.stdout.strip())


def minimum_versions(root: Path) -> dict[str, set[int]]:
    """Check file -> the minors its versioned implementations start at."""
    return {
        f.name: {int(m) for m in MINIMUM.findall(f.read_text())}
        for f in sorted((root / "policy").glob("check_*.go"))
        if not f.name.endswith("_test.go")
    }


def pinned(key: str) -> str:
    for line in (REPO / "tools/versions.env").read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip()
    raise LookupError(key)


def policy_version() -> int:
    doc = yaml.safe_load((REPO / "policies/kyverno/pod-security/pod-security.yaml").read_text())
    security = doc["spec"]["rules"][0]["validate"]["podSecurity"]
    assert security["level"] == "restricted"
    match = re.fullmatch(r"v1\.(\d+)", security["version"])
    assert match, security["version"]
    return int(match.group(1))


def test_no_check_of_the_pinned_kubernetes_changes_after_the_policy_version() -> None:
    patch = pinned("KUBERNETES_PATCH_VERSION")  # v1.33.13 -> staging module v0.33.13
    minor = int(patch.split(".")[1])
    upstream = minimum_versions(module("k8s.io/pod-security-admission", "v0." + patch.split(".", 1)[1]))
    newest = max(v for vs in upstream.values() for v in vs)
    assert newest <= policy_version() <= minor, (newest, policy_version(), minor)
    assert newest == policy_version(), "pin the newest profile change, not an older one"


def test_kyverno_fork_agrees_with_upstream_up_to_the_pinned_minor() -> None:
    replace = next(
        line
        for line in (REPO / "tools/kyverno/go.mod").read_text().splitlines()
        if "pod-security-admission =>" in line
    )
    name, version = replace.split("=>")[1].split()
    minor = int(pinned("KUBERNETES_PATCH_VERSION").split(".")[1])
    patch = pinned("KUBERNETES_PATCH_VERSION").split(".", 1)[1]
    fork = minimum_versions(module(name, version))
    upstream = minimum_versions(module("k8s.io/pod-security-admission", "v0." + patch))
    assert set(upstream) <= set(fork)
    for check, versions in upstream.items():
        assert {v for v in fork[check] if v <= minor} == versions, check
