"""`make promote` on a real git repository: a build goes dev -> stage -> prod as reviewed commits, and what
must not be promoted is refused with one line."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from testcluster.apply import expected_warnings, install_crds, kinds_in
from testcluster.controlplane import control_plane
from testcluster.kubeapi import Kube
from testcluster.run import check_environment

Helpers = tuple[Callable[..., str], Callable[[Path], None], Callable[[Path, str], str]]
NEW = "sha256:" + "ab" * 32  # the build dev runs now


def promote(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promote", "--repo", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def digest(repo: Path, env: str) -> str:
    text = (repo / "overlays" / f"{env}.yaml").read_text(encoding="utf-8")
    found = re.search(r"^services:\n  inference:\n    imageDigest: (sha256:[0-9a-f]{64})", text, re.M)
    assert found, text
    return found.group(1)


@pytest.fixture
def new_build_in_dev(repo: Path, helpers: Helpers) -> Path:
    _git, synth, commit = helpers
    dev = repo / "overlays" / "dev.yaml"
    dev.write_text(dev.read_text(encoding="utf-8").replace(digest(repo, "dev"), NEW), encoding="utf-8")
    synth(repo)
    commit(repo, "dev runs a new build")
    return repo


def test_a_build_goes_dev_stage_prod_and_the_cluster_admits_it(
    new_build_in_dev: Path, helpers: Helpers
) -> None:
    git, _synth, _commit = helpers
    repo = new_build_in_dev
    start = git(repo, "rev-parse", "HEAD")
    old_stage, redis_before = digest(repo, "stage"), (repo / "overlays" / "stage.yaml").read_text()
    skipped = promote(repo, "--from", "dev", "--to", "prod")
    assert skipped.returncode == 1
    assert skipped.stderr.strip() == (
        "promote: refused: dev -> prod skips stage (order dev -> stage -> prod); pass --skip to mean it"
    )

    done = promote(repo, "--from", "dev", "--to", "stage")
    assert done.returncode == 0, done.stderr
    branch = f"promote/stage-{NEW[7:19]}"
    assert f"committed on branch {branch} (not pushed)" in done.stdout
    assert git(repo, "branch", "--show-current") == branch
    assert git(repo, "rev-list", "--count", f"{start}..HEAD") == "1"  # one commit
    assert git(repo, "status", "--porcelain") == ""  # the overlay and dist/ are in it
    assert digest(repo, "stage") == NEW
    stage_overlay = (repo / "overlays" / "stage.yaml").read_text()
    # only the digest moved: replicas, resources, hosts, the models image stay stage's
    assert stage_overlay == redis_before.replace(old_stage, NEW)
    assert (
        f"image: ghcr.io/example/mlplatform-inference@{NEW}"
        in (repo / "dist" / "stage" / "deployment-inference.yaml").read_text()
    )
    message = git(repo, "log", "-1", "--format=%B")
    assert message.startswith(f"promote dev -> stage: inference at {NEW[7:19]}\n")
    assert "- stage: 0 added, 0 removed, 2 changed; flows 0 opened, 0 closed" in message  # inference + worker
    assert "- dev: no change" in message and "- prod: no change" in message
    assert "- gate: passes" in message
    review = done.stdout
    assert "| changed | Deployment `inference` | container inference image: ghcr.io/example/" in review
    assert f"@sha256:{NEW[7:19]}" in review

    again = promote(repo, "--from", "dev", "--to", "stage")
    assert again.returncode == 1
    assert (
        again.stderr.strip()
        == "promote: refused: stage already runs every digest dev runs; nothing to promote"
    )

    to_prod = promote(repo, "--from", "stage", "--to", "prod")
    assert to_prod.returncode == 0, to_prod.stderr
    assert git(repo, "branch", "--show-current") == f"promote/prod-{NEW[7:19]}"
    assert digest(repo, "prod") == NEW
    prod_canary = (repo / "dist" / "prod" / "deployment-inference-canary.yaml").read_text()
    assert NEW not in prod_canary  # the canary is prod's own rollout
    assert "waits for a manual sync" in to_prod.stdout

    # the promoted prod, as Argo CD would apply it, is admitted by a real apiserver at maximum scale
    with control_plane() as plane, plane.client() as http:
        kube = Kube(http)
        install_crds(kube, kinds_in(repo / "dist"))
        result = check_environment(
            kube, repo / "dist" / "prod", expected=expected_warnings(), boot_check=False
        )
    assert result.failures == []
    assert sum(result.pods.values()) >= 12 + 1 + 1 + 1 + 2


def test_refusals(new_build_in_dev: Path, helpers: Helpers) -> None:
    git, synth, commit = helpers
    repo = new_build_in_dev
    dev = repo / "overlays" / "dev.yaml"
    dev.write_text(dev.read_text().replace("  pods: 20\n", "  pods: 2\n"))
    dirty = promote(repo, "--from", "dev", "--to", "stage")
    assert dirty.returncode == 1
    assert dirty.stderr.strip() == (
        "promote: refused: the working tree has uncommitted changes; commit or stash them first"
    )
    backwards = promote(repo, "--from", "stage", "--to", "dev")
    assert "stage -> dev" not in backwards.stderr  # (the dirty tree is refused first)
    synth(repo)
    commit(repo, "dev's quota is too small for its maximum scale")
    failing = promote(repo, "--from", "dev", "--to", "stage")
    assert failing.returncode == 1
    assert failing.stderr.startswith(
        "promote: refused: dev's committed dist/ fails the gate (1 violation(s), first: "
        "quota-admits-max-scale on ResourceQuota mlplatform-dev/compute)"
    ), failing.stderr
    order = promote(repo, "--from", "stage", "--to", "dev")
    assert order.stderr.strip() == (
        "promote: refused: dev does not come after stage in the promotion order dev -> stage -> prod"
    )
    assert git(repo, "branch", "--show-current") == "main"
    assert git(repo, "status", "--porcelain") == ""
