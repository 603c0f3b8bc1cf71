"""Shared fixtures for the policy gate tests: the real tools, and the dist/ the mutation suite breaks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from policy_check import __main__ as cli
from policy_check import engines

REPO = Path(__file__).resolve().parents[2]
FIXTURE_DIST = Path(__file__).parent / "fixture_dist"
FIXTURE_FLOWS = Path(__file__).parent / "fixture_flows.json"


def real_dist_ready() -> bool:
    dist = REPO / "dist"
    return dist.is_dir() and any(
        p.is_dir() and p.name not in ("argocd", "cluster-policies") for p in dist.iterdir()
    )


@pytest.fixture(scope="session")
def tools() -> engines.Tools:
    return cli.tools_at(REPO / ".tools" / "bin")


@pytest.fixture(scope="session")
def base_dist() -> tuple[Path, dict[str, list[dict[str, Any]]] | None]:
    """The real dist/ (flows from mlplatform.api) once synthesized, else the hand-written fixture."""
    if real_dist_ready():
        return REPO / "dist", None
    return FIXTURE_DIST, json.loads(FIXTURE_FLOWS.read_text())
