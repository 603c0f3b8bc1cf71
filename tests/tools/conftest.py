"""For the review and promote tests: a real git repository in a temporary folder holding this checkout's spec,
generator, policies and dist/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: What a synth, the gate and a review read, relative to the repository root.
COPIED = (
    "main.py",
    "constructs/mlplatform",
    "tools/versions.env",  # the add-ons' pinned versions (mlplatform.infrastructure)
    "overlays",
    "dist",
    "policies",
    "apps/inference/model_build/catalog.json",
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def synth(repo: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-O", "main.py"], cwd=repo, capture_output=True, text=True, check=False, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="session")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("origin")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for rel in COPIED:
        src, dst = REPO / rel, root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=ignore)
        else:
            shutil.copy2(src, dst)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "review-test@example.com")
    git(root, "config", "user.name", "review test")
    commit(root, "the platform as this checkout has it")
    return root


@pytest.fixture
def repo(origin: Path, tmp_path: Path) -> Path:
    """A clone of `origin` of its own (its origin/main is the base a review defaults to)."""
    work = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(origin), str(work)], check=True)
    git(work, "config", "user.email", "review-test@example.com")
    git(work, "config", "user.name", "review test")
    return work


@pytest.fixture
def helpers() -> tuple[Callable[..., str], Callable[[Path], None], Callable[[Path, str], str]]:
    """(git, synth, commit) for a test's repository."""
    return git, synth, commit


@pytest.fixture
def review() -> Callable[..., str]:
    """review(repo, *args): run `python -m review` on `repo`, return the Markdown it wrote."""

    def run(repo: Path, *args: str) -> str:
        out = repo / "reports" / "review.md"
        proc = subprocess.run(
            [sys.executable, "-m", "review", "--repo", str(repo), "--out", str(out), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        text = out.read_text(encoding="utf-8")
        assert proc.stdout == text  # printed and written alike
        return text

    return run
