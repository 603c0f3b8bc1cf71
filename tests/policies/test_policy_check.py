"""The check over the known-good dist/ and its waiver handling, with the real Kyverno CLI and conftest."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform import waivers
from policy_check import declared, dist, reports, runner
from tests.support.gate import run_gate

TODAY = dt.date(2026, 6, 1)


REPO = Path(__file__).resolve().parents[2]


def check(dist_dir: Path, tools: Any, specs: Any, waiver_text: str, tmp_path: Path) -> runner.Outcome:
    return run_gate(dist_dir, tools, tmp_path, specs=specs, waiver_text=waiver_text)


def test_known_good_dist_passes_with_zero_violations_and_zero_waivers(
    base_dist: Any, tools: Any, tmp_path: Path
) -> None:
    source, specs = base_dist
    outcome = check(source, tools, specs, "waivers: []\n", tmp_path)
    assert outcome.findings == []
    assert outcome.waived == []
    assert set(dist.environments(source)) <= set(outcome.rules)


def test_shipped_exceptions_file_is_empty() -> None:
    assert waivers.load(Path(__file__).resolve().parents[2] / "policies" / "exceptions.yaml") == []


@pytest.fixture
def broken(base_dist: Any, tmp_path: Path) -> tuple[Path, Any, dict[str, Any]]:
    """A copy of one environment whose first Deployment mounts its service account token."""
    source, specs = base_dist
    env = dist.environments(source)[0]
    out = tmp_path / "dist"
    shutil.copytree(source / env, out / env)
    for f in sorted((out / env).glob("*.yaml")):
        docs = list(yaml.safe_load_all(f.read_text()))
        deployments = [d for d in docs if d and d.get("kind") == "Deployment"]
        if deployments:
            deployments[0]["spec"]["template"]["spec"]["automountServiceAccountToken"] = True
            f.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            meta = deployments[0]["metadata"]
            target = {
                "environment": env,
                "kind": "Deployment",
                "namespace": meta["namespace"],
                "name": meta["name"],
            }
            return out, specs, target
    raise AssertionError("no Deployment in the base dist")


def waiver(target: dict[str, Any], expires: str, rule: str = "disable-token-automount") -> str:
    entry = {**target, "rule": rule, "reason": "test", "owner": "policy-tests", "expires": expires}
    return yaml.safe_dump({"waivers": [entry]})


def test_per_object_violation_fails_in_its_one_engine(broken: Any, tools: Any, tmp_path: Path) -> None:
    out, specs, _ = broken
    outcome = check(out, tools, specs, "waivers: []\n", tmp_path)
    hits = [f for f in outcome.findings if f.rule == "disable-token-automount"]
    assert hits and {f.engine for f in hits} == {"kyverno"}
    assert all(f.file and f.name and f.line > 0 for f in hits)


def test_waiver_is_honoured_by_the_owning_engine(broken: Any, tools: Any, tmp_path: Path) -> None:
    out, specs, target = broken
    outcome = check(out, tools, specs, waiver(target, "2026-12-31"), tmp_path)
    assert outcome.findings == []
    assert {f.engine for f in outcome.waived} == {"kyverno"}
    assert {f.waiver for f in outcome.waived} == {"waiver-0"}


def test_conftest_rule_waiver_is_honoured(broken: Any, tools: Any, tmp_path: Path) -> None:
    out, specs, target = broken
    env = target["environment"]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "leak", "namespace": target["namespace"]},
    }
    (out / env / "zz-secret.yaml").write_text(yaml.safe_dump({**secret, "stringData": {"k": "v"}}))
    entries = [
        {**target, "rule": "disable-token-automount"},
        {"environment": env, "kind": "Secret", "namespace": target["namespace"], "name": "leak"},
    ]
    entries[1]["rule"] = "no-secret-data"
    # a Secret is also a kind the spec never produces (allowed-kinds, conftest): waived the same way
    entries.append({**entries[1], "rule": "allowed-kinds"})
    text = yaml.safe_dump(
        {
            "waivers": [
                {**e, "reason": "test", "owner": "policy-tests", "expires": "2026-12-31"} for e in entries
            ]
        }
    )
    outcome = check(out, tools, specs, text, tmp_path)
    assert outcome.findings == []
    assert {(f.rule, f.engine) for f in outcome.waived} >= {
        ("no-secret-data", "conftest"),
        ("allowed-kinds", "conftest"),
    }


def test_expired_waiver_fails(broken: Any, tools: Any, tmp_path: Path) -> None:
    out, specs, target = broken
    outcome = check(out, tools, specs, waiver(target, "2026-01-01"), tmp_path)
    rules = {f.rule for f in outcome.findings}
    assert "waivers" in rules and "disable-token-automount" in rules
    assert any("expired" in f.message for f in outcome.findings)


def test_unused_waiver_fails(broken: Any, tools: Any, tmp_path: Path) -> None:
    out, specs, target = broken
    outcome = check(out, tools, specs, waiver(target, "2026-12-31", rule="require-probes"), tmp_path)
    assert any(f.rule == "waivers" and "matches no violation" in f.message for f in outcome.findings)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("waivers: [{kind: Deployment}]\n", "missing"),
        (
            "waivers: [{environment: dev, kind: D, name: n, rule: r, reason: x, owner: o, expires: soon}]\n",
            "not a date",
        ),
        ("nope: []\n", "waivers"),
        (
            "waivers: [{environment: dev, kind: D, name: n, rule: r, reason: x, owner: o,"
            " expires: 2026-01-01, x: 1}]\n",
            "unknown field",
        ),
    ],
)
def test_malformed_waiver_file_is_a_clear_error(tmp_path: Path, text: str, error: str) -> None:
    wf = tmp_path / "exceptions.yaml"
    wf.write_text(text)
    with pytest.raises(waivers.WaiverError, match=error):
        waivers.load(wf)


def test_reports_point_at_the_object_first_line(broken: Any, tools: Any, tmp_path: Path) -> None:
    out, specs, _ = broken
    outcome = check(out, tools, specs, "waivers: []\n", tmp_path)
    assert outcome.findings
    sarif_path = tmp_path / "out.sarif"
    reports.write_sarif(sarif_path, out.parent, outcome.findings)
    results = json.loads(sarif_path.read_text())["runs"][0]["results"]
    for result in results:
        loc = result["locations"][0]["physicalLocation"]
        uri, line = loc["artifactLocation"]["uri"], loc["region"]["startLine"]
        lines = (out.parent / uri).read_text().splitlines()  # the URI exists
        assert lines[line - 1].startswith(("apiVersion:", "kind:", "metadata:", "spec:", "data:")), (
            uri,
            line,
        )
    annotations = reports.github_annotations(out.parent, outcome.findings)
    assert len(annotations) == len(outcome.findings)
    assert all(a.startswith("::error file=dist/") and ",line=" in a for a in annotations)


def test_waiver_problem_points_at_the_waiver_file(broken: Any, tools: Any, tmp_path: Path) -> None:
    out, specs, target = broken
    outcome = check(out, tools, specs, waiver(target, "2026-01-01"), tmp_path)
    problem = next(f for f in outcome.findings if f.rule == "waivers")
    assert reports.location(REPO, problem) == ("policies/exceptions.yaml", 1, 1)


def test_declared_connections_come_from_the_overlays(base_dist: Any, tools: Any, tmp_path: Path) -> None:
    """A connection added to a copy of overlays/ (the generator never saw it) is reported as not allowed."""
    source, _ = base_dist
    overlays = tmp_path / "overlays"
    shutil.copytree(REPO / "overlays", overlays)
    platform = yaml.safe_load((overlays / "platform.yaml").read_text())
    platform["connections"].append({"from": "metrics-scraper", "to": "redis"})
    (overlays / "platform.yaml").write_text(yaml.safe_dump(platform))
    out = tmp_path / "dist"
    shutil.copytree(source / "dev", out / "dev")
    outcome = check(out, tools, declared.for_environments(overlays, ["dev"]), "waivers: []\n", tmp_path)
    messages = [f.message for f in outcome.findings if f.rule == "network-isolation"]
    assert messages and all("metrics-scraper -> redis" in m and "not allowed" in m for m in messages)


def test_invalid_custom_resource_names_file_object_and_field(
    base_dist: Any, tools: Any, tmp_path: Path
) -> None:
    source, specs = base_dist
    out = tmp_path / "dist"
    shutil.copytree(source / "prod", out / "prod")
    so = out / "prod" / "scaledobject-inference.yaml"
    doc = yaml.safe_load(so.read_text())
    doc["spec"]["triggers"][0]["metadata"] = "65"
    so.write_text(yaml.safe_dump(doc))
    outcome = check(out, tools, {"prod": specs["prod"]}, "waivers: []\n", tmp_path)
    hits = [f for f in outcome.findings if f.rule == "crd-schema"]
    assert [(f.file, f.kind, f.name) for f in hits] == [
        ("scaledobject-inference.yaml", "ScaledObject", "inference")
    ]
    assert hits[0].message.startswith("spec.triggers[0].metadata: '65' is not of type 'object'")
    assert "github.com/kedacore/keda/v2@" in hits[0].message


def test_declared_reads_peers_overrides_and_implied_flows(tmp_path: Path) -> None:
    (tmp_path / "platform.yaml").write_text(
        yaml.safe_dump(
            {
                "services": {"api": {}},
                "peers": {"gw": {"namespace": "ingress", "podLabels": {"app": "gw"}}},
                "connections": [{"from": "gw", "to": "api"}, {"from": "api", "to": "redis"}],
            }
        )
    )
    overlay = {
        "namespace": "ml-x",
        "redis": {"replicas": 2},
        "peers": {"gw": {"namespace": "gw-x", "podLabels": {"k": "v"}}},
    }
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(overlay))
    spec = declared.for_environment(tmp_path, "x")
    assert spec["namespace"] == "ml-x"
    assert spec["peers"]["gw"]["namespace"] == "gw-x"  # the overlay's override wins
    edges = [(c["from"], c["to"]) for c in spec["connections"]]
    assert edges == [("gw", "api"), ("api", "redis"), ("redis", "redis"), ("*", "kube-dns")]
    overlay["redis"]["replicas"] = 1
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(overlay))
    assert ("redis", "redis") not in [
        (c["from"], c["to"]) for c in declared.for_environment(tmp_path, "x")["connections"]
    ]


def test_declared_bad_overlay_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "platform.yaml").write_text("services: {}\n")
    (tmp_path / "x.yaml").write_text("redis: {}\n")
    with pytest.raises(declared.SpecError, match=r"x\.yaml: namespace: missing"):
        declared.for_environment(tmp_path, "x")
    with pytest.raises(declared.SpecError, match=r"y\.yaml: not found"):
        declared.for_environment(tmp_path, "y")
