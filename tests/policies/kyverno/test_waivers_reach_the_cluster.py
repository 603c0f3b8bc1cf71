"""Waivers of Kyverno rules become PolicyExceptions in dist/cluster-policies/ that the real Kyverno honours.

Each exception must cover the waived object and the pods its controller creates (matched by owner, as
admission sees them), and nothing else: not a sibling whose name starts the same. Expired waivers are left
out of dist/ and fail the check; a waiver of an unknown rule is reported as unknown.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform import cluster_policies
from policy_check import runner

REPO = Path(__file__).resolve().parents[3]
NS = "mlplatform-dev"
TODAY = dt.date(2026, 6, 1)
#: a repository the spec names (restrict-image-registries), pinned (require-image-digest)
DIGEST = "ghcr.io/example/mlplatform-inference@sha256:" + "0123456789abcdef" * 4


def deployment(name: str) -> dict[str, Any]:
    fixture = REPO / "policies/kyverno/pod-security/test/good-restricted.yaml"
    doc: dict[str, Any] = yaml.safe_load(fixture.read_text())
    doc["metadata"] = {"name": name, "namespace": NS}
    doc["spec"]["selector"]["matchLabels"] = {"app": name}
    doc["spec"]["template"]["metadata"]["labels"] = {"app": name}
    pod = doc["spec"]["template"]["spec"]
    for c in [*pod["containers"], *pod.get("initContainers", [])]:
        c["image"] = DIGEST
    return doc


def owned(kind: str, name: str, owner: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    """The object a controller creates from its template, as admission sees it (ownerReferences set)."""
    ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"]}
    meta = {"name": name, "namespace": NS, "ownerReferences": [{**ref, "uid": "1", "controller": True}]}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template["spec"])}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": copy.deepcopy(owner["spec"])}


def family(name: str, breaks: Any) -> list[dict[str, Any]]:
    """A broken Deployment, its ReplicaSet and one of its Pods."""
    d = deployment(name)
    breaks(d["spec"]["template"]["spec"])
    rs = owned("ReplicaSet", f"{name}-5d8f7c9b4", d, d["spec"]["template"])
    return [d, rs, owned("Pod", f"{name}-5d8f7c9b4-x2x7q", rs, d["spec"]["template"])]


def waiver(rule: str, expires: str = "2026-12-31", name: str = "inference") -> dict[str, Any]:
    return {
        "environment": "dev",
        "kind": "Deployment",
        "namespace": NS,
        "name": name,
        "rule": rule,
        "reason": "reviewed in PR 1",
        "owner": "team-ml-platform",
        "expires": expires,
    }


def render(tmp: Path, entries: list[dict[str, Any]], today: dt.date = TODAY) -> dict[str, str | bytes]:
    root = tmp / "repo"
    shutil.copytree(REPO / "policies/kyverno", root / "policies/kyverno")
    (root / "policies/exceptions.yaml").write_text(yaml.safe_dump({"waivers": entries}))
    protected = {"argocd", "gateway-system", "ingress-nginx", "kube-system", "monitoring"}
    return cluster_policies.render(root, protected=protected, today=today)


def exception_files(tmp: Path, files: dict[str, str | bytes]) -> list[Path]:
    out = []
    for name, text in files.items():
        if name.startswith(cluster_policies.EXCEPTION_PREFIX):
            path = tmp / name
            path.write_text(text if isinstance(text, str) else text.decode())
            out.append(path)
    return out


def automount(spec: dict[str, Any]) -> None:
    spec["automountServiceAccountToken"] = True


def sysctl(spec: dict[str, Any]) -> None:
    spec["securityContext"]["sysctls"] = [{"name": "kernel.msgmax", "value": "65536"}]


@pytest.mark.parametrize(
    ("rule", "breaks"),
    [("disable-token-automount", automount), ("pod-security", sysctl)],
    ids=["validating-policy", "cluster-policy"],
)
def test_exception_covers_the_object_and_its_pods_and_nothing_else(
    tmp_path: Path, cli: Any, rule: str, breaks: Any
) -> None:
    files = render(tmp_path, [waiver(rule)])
    exceptions = exception_files(tmp_path, files)
    assert len(exceptions) == 1
    waived, sibling = family("inference", breaks), family("inference-canary", breaks)
    results = cli.apply(
        tmp_path / "run", cli.shipped_policies(), waived + sibling, [cli.managed(NS)], exceptions
    )
    failed = {(k, n) for p, k, n in cli.by_result(results, "fail") if p == rule}
    assert failed == {(o["kind"], o["metadata"]["name"]) for o in sibling}
    assert not {n for p, _, n in cli.by_result(results, "fail") if p != rule}  # only that rule is broken
    # and without the exception all six are denied: the exception is what spares the three
    results = cli.apply(tmp_path / "bare", cli.shipped_policies(), waived + sibling, [cli.managed(NS)])
    assert len({(k, n) for p, k, n in cli.by_result(results, "fail") if p == rule}) == 6


def test_expired_waiver_is_absent_from_dist(tmp_path: Path) -> None:
    files = render(tmp_path, [waiver("require-probes", expires="2026-05-31")])
    assert not [n for n in files if n.startswith(cluster_policies.EXCEPTION_PREFIX)]
    live = render(tmp_path / "live", [waiver("require-probes", expires="2026-06-01")])
    assert len([n for n in live if n.startswith(cluster_policies.EXCEPTION_PREFIX)]) == 1


def test_waiver_of_a_conftest_rule_gets_no_kyverno_exception(tmp_path: Path) -> None:
    files = render(tmp_path, [waiver("no-secret-data")])
    assert not [n for n in files if n.startswith(cluster_policies.EXCEPTION_PREFIX)]


def check(tmp: Path, tools: Any, entries: list[dict[str, Any]], breaks: Any = None) -> runner.Outcome:
    """The whole check over a copy of dist/ (dev broken by `breaks`) with these waivers."""
    out = tmp / "dist"
    shutil.copytree(REPO / "dist", out)
    if breaks is not None:
        path = out / "dev" / "deployment-inference.yaml"
        doc = yaml.safe_load(path.read_text())
        breaks(doc["spec"]["template"]["spec"])
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    # what synth writes for these waivers
    shipped = out / "cluster-policies"
    for name, text in render(tmp, entries, dt.date.today()).items():
        (shipped / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    wf = tmp / "exceptions.yaml"
    wf.write_text(yaml.safe_dump({"waivers": entries}))
    return runner.run(repo_root=REPO, dist_dir=out, tools=tools, waiver_file=wf, only_env=None)


def test_the_check_reports_a_waived_kyverno_finding_as_waived(tmp_path: Path, tools: Any) -> None:
    outcome = check(tmp_path, tools, [waiver("disable-token-automount", expires="2099-01-01")], automount)
    assert [(f.rule, f.waiver) for f in outcome.waived] == [("disable-token-automount", "waiver-0")]
    assert not outcome.findings, [f.describe() for f in outcome.findings]


def test_an_expired_waiver_fails_the_check(tmp_path: Path, tools: Any) -> None:
    outcome = check(tmp_path, tools, [waiver("disable-token-automount", expires="2020-01-01")], automount)
    rules = {f.rule for f in outcome.findings}
    assert {"waivers", "disable-token-automount"} <= rules
    assert any("expired on 2020-01-01" in f.message for f in outcome.findings)


def test_a_waiver_of_an_unknown_rule_is_reported_unknown(tmp_path: Path, tools: Any) -> None:
    outcome = check(tmp_path, tools, [waiver("require-unicorns", expires="2099-01-01")])
    assert [f.rule for f in outcome.findings] == ["waivers"]
    assert "unknown rule 'require-unicorns'" in outcome.findings[0].message


def test_an_unused_kyverno_waiver_fails_the_check(tmp_path: Path, tools: Any) -> None:
    outcome = check(tmp_path, tools, [waiver("require-probes", expires="2099-01-01")])
    assert any(f.rule == "waivers" and "matches no violation" in f.message for f in outcome.findings)


def test_a_stale_exception_in_dist_fails_the_check(tmp_path: Path, tools: Any) -> None:
    out = tmp_path / "dist"
    shutil.copytree(REPO / "dist", out)
    stale = render(tmp_path, [waiver("require-probes", expires="2099-01-01")])
    for f in exception_files(out / "cluster-policies", stale):
        assert f.exists()
    wf = tmp_path / "exceptions.yaml"
    wf.write_text("waivers: []\n")  # the waiver was removed, synth not rerun
    outcome = runner.run(repo_root=REPO, dist_dir=out, tools=tools, waiver_file=wf, only_env=None)
    assert [f.rule for f in outcome.findings] == [runner.CLUSTER_POLICIES_RULE]
