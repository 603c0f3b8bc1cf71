"""imports/mlplatform_crds/ is exactly what `cdk8s import` makes from the pinned CRD files (a real import)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


@pytest.mark.slow
def test_committed_crd_classes_are_a_fresh_import(repo_root: Path) -> None:
    """Fails when someone edits the generated classes, or changes a pin or cdk8s.yaml without regenerating."""
    cli = repo_root / "node_modules" / ".bin" / "cdk8s"
    assert cli.exists(), "no cdk8s CLI in node_modules/.bin: run `make setup`"
    env = dict(os.environ, CDK8S=str(cli))
    done = subprocess.run(
        [str(repo_root / "imports" / "generate.sh"), "--check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "is up to date" in done.stderr
