"""The check over the known-good dist/ and its waiver handling, with the real Kyverno CLI and conftest."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from policy_check import dist, runner, waivers

TODAY = dt.date(2026, 6, 1)


def check(dist_dir: Path, tools: Any, flows: Any, waiver_text: str, tmp_path: Path) -> runner.Outcome:
    wf = tmp_path / "exceptions.yaml"
    wf.write_text(waiver_text)
    return runner.run(
        repo_root=Path(__file__).resolve().parents[2],
        dist_dir=dist_dir,
        tools=tools,
        waiver_file=wf,
        only_env=None,
        declared_flows=flows,
        today=TODAY,
    )


def test_known_good_dist_passes_with_zero_violations_and_zero_waivers(
    base_dist: Any, tools: Any, tmp_path: Path
) -> None:
    source, flows = base_dist
    outcome = check(source, tools, flows, "waivers: []\n", tmp_path)
    assert outcome.findings == []
    assert outcome.waived == []
    assert set(dist.environments(source)) <= set(outcome.rules)


def test_shipped_exceptions_file_is_empty() -> None:
    assert waivers.load(Path(__file__).resolve().parents[2] / "policies" / "exceptions.yaml") == []


@pytest.fixture
def broken(base_dist: Any, tmp_path: Path) -> tuple[Path, Any, dict[str, Any]]:
    """A copy of one environment whose first Deployment mounts its service account token."""
    source, flows = base_dist
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
            return out, flows, target
    raise AssertionError("no Deployment in the base dist")


def waiver(target: dict[str, Any], expires: str, rule: str = "disable-token-automount") -> str:
    entry = {**target, "rule": rule, "reason": "test", "owner": "policy-tests", "expires": expires}
    return yaml.safe_dump({"waivers": [entry]})


def test_violation_without_waiver_fails_in_both_engines(broken: Any, tools: Any, tmp_path: Path) -> None:
    out, flows, _ = broken
    outcome = check(out, tools, flows, "waivers: []\n", tmp_path)
    hits = [f for f in outcome.findings if f.rule == "disable-token-automount"]
    assert {f.engine for f in hits} == {"kyverno", "conftest"}
    assert all(f.file and f.name for f in hits)


def test_waiver_is_honoured_by_both_engines(broken: Any, tools: Any, tmp_path: Path) -> None:
    out, flows, target = broken
    outcome = check(out, tools, flows, waiver(target, "2026-12-31"), tmp_path)
    assert outcome.findings == []
    assert {f.engine for f in outcome.waived} == {"kyverno", "conftest"}
    assert {f.waiver for f in outcome.waived} == {"waiver-0"}


def test_expired_waiver_fails(broken: Any, tools: Any, tmp_path: Path) -> None:
    out, flows, target = broken
    outcome = check(out, tools, flows, waiver(target, "2026-01-01"), tmp_path)
    rules = {f.rule for f in outcome.findings}
    assert "waivers" in rules and "disable-token-automount" in rules
    assert any("expired" in f.message for f in outcome.findings)


def test_unused_waiver_fails(broken: Any, tools: Any, tmp_path: Path) -> None:
    out, flows, target = broken
    outcome = check(out, tools, flows, waiver(target, "2026-12-31", rule="require-probes"), tmp_path)
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
