"""tools/setup/prereqs.sh stops with a message naming a missing prerequisite and how to get it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools/setup/prereqs.sh"


def path_with(tmp_path: Path, tools: list[str]) -> str:
    """A PATH holding only links to the named tools (and the shell utilities the script uses)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in [*tools, "bash", "dirname", "cat", "printf"]:
        # python3 may be a version-manager shim that needs more of PATH: link the interpreter itself
        found = str(Path(sys.executable).resolve()) if tool == "python3" else shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def run(path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)


PREREQS = ["python3", "go", "node", "npm", "patch"]


def test_all_prerequisites_present_passes(tmp_path: Path) -> None:
    result = run(path_with(tmp_path, PREREQS))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", PREREQS)
def test_missing_prerequisite_is_named_with_how_to_get_it(tmp_path: Path, missing: str) -> None:
    present = [t for t in PREREQS if t != missing]
    result = run(path_with(tmp_path, present))
    assert result.returncode != 0
    assert f"error: {missing} is required but not on PATH." in result.stderr
    assert "Install" in result.stderr
