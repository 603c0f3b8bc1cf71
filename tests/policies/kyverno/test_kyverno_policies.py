"""The Kyverno policies: one concern each, a why, good and bad fixtures, messages naming the object."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform import cluster_policies

REPO = Path(__file__).resolve().parents[3]
POLICIES = cluster_policies.sources(REPO)
#: The one ClusterPolicy: Kyverno v1.19.1 has the upstream profile only as the podSecurity subrule.
CLUSTER_POLICIES = {"pod-security"}
#: What the issue names explicitly; each must be a bad fixture of pod-security.
PROFILE_BREAKS = {
    "bad-forbidden-sysctl",
    "bad-unmasked-proc-mount",
    "bad-apparmor-unconfined",
    "bad-selinux-type",
    "bad-selinux-user",
    "bad-nfs-volume",
    "bad-host-path-volume",
}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_kyverno_test_passes_on_every_policy(cli: Any) -> None:
    proc = subprocess.run(
        [str(cli.repo / ".tools/bin/kyverno"), "test", "policies/kyverno", "--remove-color"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary = [line for line in proc.stdout.splitlines() if line.startswith("Test Summary")]
    assert proc.returncode == 0 and summary and " 0 tests failed" in summary[0], proc.stdout[-3000:]
    tests = sum(len(load(p.parent / "test/kyverno-test.yaml")["results"]) for p in POLICIES)
    passed = int(summary[0].split(":")[1].split()[0])
    assert passed >= tests, summary  # every expected result was checked (the CLI adds rows of its own)


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_policy_kind_and_why(path: Path) -> None:
    doc = load(path)
    want = "ClusterPolicy" if path.stem in CLUSTER_POLICIES else "ValidatingPolicy"
    assert (doc["apiVersion"], doc["kind"]) == (
        {"ClusterPolicy": "kyverno.io/v1", "ValidatingPolicy": "policies.kyverno.io/v1"}[want],
        want,
    )
    notes = doc["metadata"]["annotations"]
    for key in ("title", "category", "severity", "subject", "description"):
        assert notes.get(f"policies.kyverno.io/{key}"), f"{path}: no {key} annotation"
    assert len(notes["policies.kyverno.io/description"].split()) >= 20, "the why, in words"
    if want == "ValidatingPolicy":
        assert doc["spec"]["validationActions"] == ["Deny"]
        for v in doc["spec"]["validations"]:
            assert "request.name" in v["messageExpression"], "a message must name the object"


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_fixtures_are_good_and_bad_and_all_listed(path: Path) -> None:
    test_dir = path.parent / "test"
    spec = load(test_dir / "kyverno-test.yaml")
    assert spec["policies"] == [f"../{path.name}"]
    fixtures = {p.name for p in test_dir.glob("*.yaml")} - {"kyverno-test.yaml", "values.yaml"}
    assert set(spec["resources"]) == fixtures
    expected = {name: r["result"] for r in spec["results"] for name in r["resources"]}
    assert set(expected) == {f.removesuffix(".yaml") for f in fixtures}
    for name, result in expected.items():
        assert result == ("pass" if name.startswith("good-") else "fail"), name
    assert any(n.startswith("good-") for n in expected) and any(n.startswith("bad-") for n in expected)
    if path.stem == "pod-security":
        assert set(expected) >= PROFILE_BREAKS


def test_messages_name_the_offending_object(cli: Any, tmp_path: Path) -> None:
    objects, policies = [], []
    for path in POLICIES:
        if path.stem in CLUSTER_POLICIES:
            continue  # the podSecurity subrule writes its own message; the finding names the object
        policies.append(path)
        objects += [load(f) for f in sorted((path.parent / "test").glob("bad-*.yaml"))]
    results = cli.apply(tmp_path, policies, objects, [cli.managed("ml-fixture")])
    failed = [r for r in results if r["result"] == "fail"]
    assert {res["name"] for r in failed for res in r["resources"]} >= {o["metadata"]["name"] for o in objects}
    for r in failed:
        (res,) = r["resources"]
        assert r["message"].startswith(f"{res['kind']} ml-fixture/{res['name']}: "), r["message"]
