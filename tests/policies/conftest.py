"""Shared fixtures for the policy gate tests: the real tools, and the dist/ the mutation suite breaks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policy_check import __main__ as cli
from policy_check import declared, dist, engines

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tools() -> engines.Tools:
    return cli.tools_at(REPO / ".tools" / "bin")


@pytest.fixture(scope="session")
def base_dist() -> tuple[Path, dict[str, dict[str, Any]]]:
    """The committed dist/ and, per environment, what overlays/ declares (read from the YAML)."""
    source = REPO / "dist"
    return source, declared.for_environments(REPO / "overlays", dist.environments(source))
