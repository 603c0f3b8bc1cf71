"""Determinism, the committed-dist drift check, dist/ rules, atomic writes and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform import signing_policy
from mlplatform.argocd import CLUSTER_SCOPED, NAMESPACED_KINDS
from mlplatform.synth import Rendered, render, synthesize

from .conftest import is_chart


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_renders_are_byte_identical(rendered: Rendered, repo_root: Path) -> None:
    assert render(repo_root).folders == rendered.folders


def test_committed_dist_is_up_to_date(repo_root: Path, tmp_path: Path) -> None:
    """Fails when someone changed overlays/ or the constructs and forgot `make synth`."""
    synthesize(repo_root, out=tmp_path / "dist")
    fresh, committed = _tree(tmp_path / "dist"), _tree(repo_root / "dist")
    stale = sorted(set(fresh) ^ set(committed)) + sorted(
        k for k in fresh if fresh[k] != committed.get(k, fresh[k])
    )
    assert not stale, f"dist/ is stale (run `make synth`): {stale}"


def test_stale_files_are_removed_and_env_only_touches_its_folder(repo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    synthesize(repo_root, out=out)
    (out / "dev" / "old-object.yaml").write_text("stale: true\n")
    (out / "gone-env").mkdir()
    (out / "prod" / "marker.yaml").write_text("x: 1\n")
    synthesize(repo_root, out=out, only=["dev"])
    assert not (out / "dev" / "old-object.yaml").exists()
    assert (out / "prod" / "marker.yaml").exists()  # --env dev leaves other environments alone
    synthesize(repo_root, out=out)
    assert not (out / "gone-env").exists()
    assert not (out / "prod" / "marker.yaml").exists()
    assert not [p for p in tmp_path.iterdir() if p.name != "dist"]  # no temp folders left behind


def test_dist_rules(objects: dict[str, list[dict[str, Any]]], rendered: Rendered) -> None:
    namespaced = set(NAMESPACED_KINDS)
    cluster = set(CLUSTER_SCOPED)
    for folder, files in rendered.folders.items():
        if is_chart(folder):  # no Application reads it as a folder of manifests (test_helm_chart.py)
            continue
        for name in files:
            assert name.endswith(".yaml") or name == "ARCHITECTURE.md", f"{folder}/{name}"
            assert name not in ("kustomization.yaml", "Chart.yaml", "construct-metadata.json")
    for folder, objs in objects.items():
        for obj in objs:
            where = f"{folder}/{obj['kind']}/{obj['metadata']['name']}"
            assert obj["kind"] != "Secret", where
            text = repr(obj)
            assert "cdk8s.io/metadata" not in text, where
            group = obj["apiVersion"].rpartition("/")[0]
            if (group, obj["kind"]) in cluster:
                assert "namespace" not in obj["metadata"], where
            elif folder.startswith("infrastructure/"):  # add-ons' Applications (test_infrastructure.py)
                assert obj["kind"] == "Application" and obj["metadata"]["namespace"] == "argocd", where
            elif folder != "argocd":
                assert (group, obj["kind"]) in namespaced, f"{where}: add the kind to NAMESPACED_KINDS"
                assert obj["metadata"]["namespace"].startswith("mlplatform-"), where
            else:
                assert obj["metadata"]["namespace"] == "argocd", where
            if folder != "cluster-policies":  # those are byte-identical copies of the policies
                assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "cdk8s", where


def test_cluster_policies_are_byte_identical_copies(rendered: Rendered, repo_root: Path) -> None:
    kyverno = repo_root / "policies" / "kyverno"
    expected = {
        f"{d.name}.yaml": (d / f"{d.name}.yaml").read_bytes()
        for d in sorted(kyverno.iterdir() if kyverno.is_dir() else [])
        if (d / f"{d.name}.yaml").is_file()
    }
    shipped = dict(rendered.folders["cluster-policies"])
    generated = shipped.pop(signing_policy.FILE)  # the one policy rendered from the spec, not copied
    assert shipped == expected
    assert yaml.safe_load(generated)["kind"] == "ImageValidatingPolicy"


def test_no_policies_leaves_only_the_image_signature_policy(spec_copy: Path) -> None:
    """Without policies/kyverno/ nothing is copied; the spec's signing key still gets its policy."""
    assert list(render(spec_copy).folders["cluster-policies"]) == [signing_policy.FILE]


@pytest.mark.slow
def test_main_cli_writes_one_environment(repo_root: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSII_SILENCE")}  # a plain shell
    done = subprocess.run(
        [sys.executable, str(repo_root / "main.py"), "--env", "dev", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "end-of-life" not in done.stderr and "b'" not in done.stderr, done.stderr  # no jsii Node banner
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "argocd",
        "cluster-policies",
        "dev",
        "infrastructure",
    ]
    assert _tree(tmp_path / "out" / "dev") == _tree(repo_root / "dist" / "dev")
    bad = subprocess.run(
        [sys.executable, str(repo_root / "main.py"), "--env", "qa", "--out", str(tmp_path / "out2")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 2 and "'qa'" in bad.stderr and "allowed" in bad.stderr
    assert not (tmp_path / "out2").exists()
