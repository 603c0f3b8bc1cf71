"""One real control plane for the cluster tests of a session, and mutated copies of dist/ to apply to it."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.schema.catalog import CATALOG_FILE
from policy_check import __main__ as gate_cli
from policy_check import declared, runner
from policy_check.findings import Finding
from testcluster.apply import install_crds, kinds_in
from testcluster.controlplane import ControlPlane, control_plane
from testcluster.kubeapi import Kube
from tests.support.manifests import first

REPO = Path(__file__).resolve().parents[3]
DIST = REPO / "dist"
Docs = dict[str, list[dict[str, Any]]]  # file name -> its documents
_ids = itertools.count(1)


@pytest.fixture(scope="session")
def plane() -> Iterator[ControlPlane]:
    with control_plane() as started:
        yield started


@pytest.fixture(scope="session")
def kube(plane: ControlPlane) -> Iterator[Kube]:
    with plane.client() as http:
        client = Kube(http)
        install_crds(client, kinds_in(DIST))
        yield client


def read_env(env: str) -> Docs:
    return {p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted((DIST / env).glob("*.yaml"))}


def write_env(docs: Docs, folder: Path, *, rename_namespace: tuple[str, str] | None = None) -> Path:
    """Write documents as a dist/<env>/ folder; optionally move them to another namespace (one cluster, many
    mutants: each gets a namespace of its own)."""
    folder.mkdir(parents=True)
    for name, documents in docs.items():
        text = yaml.safe_dump_all(documents, sort_keys=False)
        if rename_namespace:
            text = text.replace(rename_namespace[0], rename_namespace[1])
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def mutant(tmp_path: Path) -> Callable[[str, Callable[[Docs], None]], tuple[Path, Path]]:
    """mutant(env, change) -> (a dist/ copy with the change, for the gate; the env folder alone in its own
    namespace, for the cluster)."""

    def make(env: str, change: Callable[[Docs], None]) -> tuple[Path, Path]:
        docs = read_env(env)
        change(docs)
        gate_dist = tmp_path / "dist"
        shutil.copytree(DIST, gate_dist)
        shutil.rmtree(gate_dist / env)
        write_env(docs, gate_dist / env)
        namespace = first(docs, "Namespace")["metadata"]["name"]
        cluster_folder = write_env(
            docs, tmp_path / "cluster" / env, rename_namespace=(namespace, f"mutant-{next(_ids)}-{env}")
        )
        return gate_dist, cluster_folder

    return make


def gate_findings(
    dist: Path, overlays: Path, envs: list[str], tmp_path: Path, *, only_env: str | None = None
) -> list[Finding]:
    """The findings of `make check`'s engine on `dist` as `overlays` declare it, with no waivers."""
    waiver_file = tmp_path / "exceptions.yaml"
    waiver_file.write_text("waivers: []\n")
    outcome = runner.run(
        repo_root=REPO,
        dist_dir=dist,
        tools=gate_cli.tools_at(REPO / ".tools" / "bin"),
        waiver_file=waiver_file,
        only_env=only_env,
        specs=declared.for_environments(overlays, envs),
        overlays=overlays,
    )
    return outcome.findings


def env_findings(spec: Path, dist: Path, env: str, tmp_path: Path) -> list[str]:
    """`rule: message` of each finding of `make check`'s engine for `env` (as `spec`'s overlays declare)."""
    found = gate_findings(dist, spec / "overlays", [env], tmp_path, only_env=env)
    return [f"{f.rule}: {f.message}" for f in found if f.environment == env]


def spec_copy(root: Path) -> Path:
    """This checkout's overlays/ and model catalog under `root`: a spec a test may change and synthesize."""
    shutil.copytree(REPO / "overlays", root / "overlays")
    (root / Path(CATALOG_FILE).parent).mkdir(parents=True)
    shutil.copy(REPO / CATALOG_FILE, root / CATALOG_FILE)
    return root
