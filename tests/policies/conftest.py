"""Shared fixtures for the policy gate tests: the real tools, and the dist/ the mutation suite breaks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policy_check import __main__ as cli
from policy_check import declared, dist, engines
from tests.support.gate import run_gate

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tools() -> engines.Tools:
    return cli.tools_at(REPO / ".tools" / "bin")


@pytest.fixture(scope="session")
def base_dist() -> tuple[Path, dict[str, dict[str, Any]]]:
    """The committed dist/ and, per environment, what overlays/ declares (read from the YAML)."""
    source = REPO / "dist"
    return source, declared.for_environments(REPO / "overlays", dist.environments(source))


def check_environment(root: Path, dist_dir: Path, tools: Any, env: str, tmp_path: Path) -> list[str]:
    """`rule: message` of every finding for `env` of `dist_dir`, with what `root`/overlays declares (no
    waivers; the CRD schemas and versions come from this repository)."""
    specs = declared.for_environments(root / "overlays", [env])
    outcome = run_gate(dist_dir, tools, tmp_path, specs=specs, only_env=env)
    return [f"{f.rule}: {f.message}" for f in outcome.findings if f.environment == env]


@pytest.fixture(scope="session")
def check_env() -> Any:
    """check_env(root, dist_dir, tools, env, tmp_path): the findings of one environment (`rule: message`)."""
    return check_environment
