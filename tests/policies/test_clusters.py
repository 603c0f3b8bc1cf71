"""The gate over an environment on several clusters: every dist/<env>/<cluster>/ folder is checked as an
environment of its own, with what its overlay declares, and a finding names the cluster's folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from policy_check import declared, dist, runner
from policy_check.findings import Finding
from tests.support import clusters
from tests.support.clusters import EU, US
from tests.support.gate import run_gate

REPO = Path(__file__).resolve().parents[2]
FOLDERS = [f"prod/{EU}", f"prod/{US}"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository root whose prod runs on two clusters (overlays/ edited, dist/ synthesized from it)."""
    return clusters.fleet(tmp_path_factory.mktemp("fleet"))


def _check(
    root: Path, dist_dir: Path, tools: Any, tmp_path: Path, only_env: str | None = None
) -> runner.Outcome:
    specs = declared.for_environments(root / "overlays", declared.environments(root / "overlays"))
    return run_gate(dist_dir, tools, tmp_path, specs=specs, only_env=only_env, overlays=root / "overlays")


def test_each_cluster_is_checked_and_the_fleet_passes(fleet: Path, tools: Any, tmp_path: Path) -> None:
    assert dist.environments(fleet / "dist") == ["dev", *FOLDERS, "stage"]
    assert declared.environments(fleet / "overlays") == ["dev", *FOLDERS, "stage"]
    outcome = _check(fleet, fleet / "dist", tools, tmp_path)
    assert outcome.findings == []
    assert set(FOLDERS) <= set(outcome.rules)
    # an environment's name checks all of its clusters
    assert set(_check(fleet, fleet / "dist", tools, tmp_path, only_env="prod").rules) >= set(FOLDERS)


def _broken(fleet: Path, tmp_path: Path) -> Path:
    """The fleet's dist/ with eu-west's Redis NetworkPolicy gone and its Deployment run as root."""
    out = tmp_path / "dist"
    shutil.copytree(fleet / "dist", out)
    (out / "prod" / EU / "networkpolicy-allow-redis-from-inference.yaml").unlink()
    deployment = out / "prod" / EU / "deployment-inference.yaml"
    text = deployment.read_text()
    assert "runAsNonRoot: true" in text
    deployment.write_text(text.replace("runAsNonRoot: true", "runAsNonRoot: false"))
    return out


def test_a_break_in_one_cluster_is_found_there_and_nowhere_else(
    fleet: Path, tools: Any, tmp_path: Path
) -> None:
    outcome = _check(fleet, _broken(fleet, tmp_path), tools, tmp_path)
    assert outcome.findings, "nothing found"
    assert {f.environment for f in outcome.findings} == {f"prod/{EU}"}
    engines = {f.engine for f in outcome.findings}
    assert {"kyverno", "conftest"} <= engines, engines
    by_file: dict[str, list[Finding]] = {}
    for f in outcome.findings:
        by_file.setdefault(f.path(), []).append(f)
    assert f"dist/prod/{EU}/deployment-inference.yaml" in by_file
    assert all(path.startswith(f"dist/prod/{EU}/") for path in by_file), sorted(by_file)
    # the deployment's finding carries its line in eu-west's file, and the overlay field behind it
    (root_finding, *_) = [f for f in by_file[f"dist/prod/{EU}/deployment-inference.yaml"] if f.line]
    assert root_finding.line > 0 and "overlays/prod.yaml:" in root_finding.origin, root_finding


def test_an_application_must_point_at_a_cluster_folder_that_exists(
    fleet: Path, tools: Any, tmp_path: Path
) -> None:
    out = tmp_path / "dist"
    shutil.copytree(fleet / "dist", out)
    shutil.rmtree(out / "prod" / US)
    shutil.copytree(out / "prod" / EU, out / "prod" / "us-west")  # a cluster the spec does not have
    outcome = _check(fleet, out, tools, tmp_path)
    paths = [f for f in outcome.findings if f.rule == "argocd-paths"]
    assert [f.name for f in paths] == [f"mlplatform-prod-{US}"], [f.message for f in outcome.findings]
