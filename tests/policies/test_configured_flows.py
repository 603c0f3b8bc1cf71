"""configured-flows: a setting that names a Service of the namespace needs a NetworkPolicy path to it.

The issue's case: an API whose ConfigMap names the jobs Redis (INFERENCE_JOBS_REDIS_URL) while the spec
declares no such connection, so no NetworkPolicy lets it through and, under default deny, every request would
get a 503 from the quota store. network-isolation compares the policies with the spec's connections and finds
them consistent; configured-flows reads the settings from dist/ and stops it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DROPPED = ("allow-inference-to-jobs-redis", "allow-jobs-redis-from-inference")


def _stage_without_the_api_jobs_policies(tmp_path: Path) -> Path:
    out = tmp_path / "dist"
    shutil.copytree(REPO / "dist" / "stage", out / "stage")
    for name in DROPPED:
        (out / "stage" / f"networkpolicy-{name}.yaml").unlink()
    return out


def _spec_without(tmp_path: Path, edge: str) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "overlays", root / "overlays")
    platform = root / "overlays" / "platform.yaml"
    assert edge in platform.read_text()
    platform.write_text(platform.read_text().replace(edge, "", 1))
    return root


def test_a_setting_without_a_path_fails_even_where_the_spec_agrees(
    tmp_path: Path, tools: Any, check_env: Any
):
    out = _stage_without_the_api_jobs_policies(tmp_path)
    root = _spec_without(tmp_path, "  - from: inference\n    to: jobs-redis\n")
    found = check_env(root, out, tools, "stage", tmp_path)
    assert not [f for f in found if f.startswith("network-isolation:")], found  # the spec agrees
    flows = [f for f in found if f.startswith("configured-flows:")]
    assert len(flows) == 1, found
    assert "Deployment mlplatform-stage/inference" in flows[0]
    assert "INFERENCE_JOBS_REDIS_URL=redis://jobs-redis:6379/0 names Service jobs-redis" in flows[0]
    assert "on TCP/6379 (redis)" in flows[0]


def test_dropping_the_new_policy_is_stopped_by_both_rules(tmp_path: Path, tools: Any, check_env: Any):
    out = _stage_without_the_api_jobs_policies(tmp_path)
    rules = {f.split(":", 1)[0] for f in check_env(REPO, out, tools, "stage", tmp_path)}
    assert {"configured-flows", "network-isolation"} <= rules


def test_the_committed_environments_pass(tmp_path: Path, tools: Any, check_env: Any):
    for env in ("dev", "stage", "prod"):
        found = check_env(REPO, REPO / "dist", tools, env, tmp_path)
        assert not [f for f in found if f.startswith("configured-flows:")], found
