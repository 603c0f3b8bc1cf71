"""The policy gate as the tests run it: this repository's policies, CRD schemas and versions, a fixed day."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from policy_check import runner

REPO = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 6, 1)


def run_gate(
    dist_dir: Path,
    tools: Any,
    tmp_path: Path,
    *,
    specs: dict[str, dict[str, Any]],
    only_env: str | None = None,
    overlays: Path | None = None,
    waiver_text: str = "waivers: []\n",
) -> runner.Outcome:
    """The gate over `dist_dir` with these declared specs and waivers (the policies, CRD schemas and versions
    of this repository), on a fixed day."""
    waiver_file = tmp_path / "exceptions.yaml"
    waiver_file.write_text(waiver_text)
    return runner.run(
        repo_root=REPO,
        dist_dir=dist_dir,
        tools=tools,
        waiver_file=waiver_file,
        only_env=only_env,
        specs=specs,
        today=TODAY,
        overlays=overlays,
    )
