"""`cdk8s synth` (the real cdk8s CLI from node_modules, with cdk8s.yaml) is as safe as `make synth`.

The CLI deletes its output folder before it runs the app; cdk8s.yaml therefore gives it a scratch folder and
main.py writes dist/ atomically. Each test runs the CLI in a temporary copy of the repository whose dist/
holds a marker file: a failed synth must leave dist/ byte-for-byte as it was, whatever PATH holds and
whatever the spec gets wrong; a successful one must give exactly what `make synth` (main.py) gives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlplatform.synth import synthesize

REPO_ROOT = Path(__file__).resolve().parents[1]
CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk8s"
#: A PATH without the project's virtualenv (what a new shell has): the CLI must not depend on it.
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"

pytestmark = pytest.mark.slow


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository to synthesize in: its own spec, main.py, cdk8s.yaml and dist/ (with a marker file)."""
    assert CLI.exists(), "no cdk8s CLI in node_modules/.bin: run `make setup`"
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("main.py", "cdk8s.yaml"):
        shutil.copy2(REPO_ROOT / name, root / name)
    shutil.copytree(REPO_ROOT / "overlays", root / "overlays")
    catalog = Path("apps/inference/model_build/catalog.json")
    (root / catalog.parent).mkdir(parents=True)
    shutil.copy2(REPO_ROOT / catalog, root / catalog)
    for name in ("constructs", "policies", ".venv"):
        (root / name).symlink_to(REPO_ROOT / name)
    shutil.copytree(REPO_ROOT / "dist", root / "dist")
    (root / "dist" / "dev" / "marker.yaml").write_text("kept: until a successful synth\n")
    return root


def _cdk8s_synth(root: Path) -> subprocess.CompletedProcess[str]:
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": BARE_PATH, "CDK8S_CHECK_UPGRADE": "false"}
    return subprocess.run(
        [str(CLI), "synth"], cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_a_successful_cdk8s_synth_writes_what_make_synth_writes(repo: Path, tmp_path: Path) -> None:
    done = _cdk8s_synth(repo)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    synthesize(repo, out=tmp_path / "expected")
    assert _tree(repo / "dist") == _tree(tmp_path / "expected")  # the marker (a stale file) is gone too
    scratch = repo / yaml.safe_load((repo / "cdk8s.yaml").read_text())["output"]
    assert scratch.is_symlink() and scratch.resolve() == (repo / "dist").resolve()
    assert "build/cdk8s.out/dev/namespace-mlplatform-dev.yaml" in done.stdout  # the CLI lists the files
    again = _cdk8s_synth(repo)  # the CLI removes the link it finds, never the folder it points at
    assert again.returncode == 0, again.stderr[-2000:]
    assert _tree(repo / "dist") == _tree(tmp_path / "expected")


def test_a_spec_error_leaves_dist_as_it_was(repo: Path) -> None:
    before = _tree(repo / "dist")
    overlay = repo / "overlays" / "dev.yaml"
    overlay.write_text(overlay.read_text().replace("namespace: ", "namespace: Not_A_Label_", 1))
    done = _cdk8s_synth(repo)
    assert done.returncode != 0
    assert "overlays/dev.yaml:" in done.stderr and "namespace" in done.stderr
    assert _tree(repo / "dist") == before


def test_without_the_virtualenv_dist_is_left_as_it_was(repo: Path) -> None:
    """No .venv (a fresh clone before `make`) and none on PATH: the app cannot start; dist/ stays."""
    before = _tree(repo / "dist")
    (repo / ".venv").unlink()
    done = _cdk8s_synth(repo)
    assert done.returncode != 0
    assert _tree(repo / "dist") == before
