"""ARCHITECTURE.md's layering holds: import-linter checks the contracts of pyproject.toml's
[tool.importlinter] over the real import graph (direct and indirect imports)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_layering_contract_is_kept() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"][
        "contracts"
    ]
    assert len(contracts) >= 3
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"{len(contracts)} kept, 0 broken" in done.stdout


def test_architecture_names_every_top_level_folder() -> None:
    """The map lists each folder a newcomer meets at the top level."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    folders = sorted({p.split("/")[0] for p in tracked if "/" in p and not p.startswith(".")})
    missing = [f for f in folders if f"`{f}/" not in text]
    assert missing == []
