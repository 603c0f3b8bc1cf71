"""An environment on several clusters against the session's real kube-apiserver: the cluster test finds each
cluster's folder dist/<env>/<cluster>/ and applies it as it is, every object accepted and every workload
admitted at its own maximum scale (eu-west's bounds, not prod's)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from testcluster.apply import expected_warnings, load_folder
from testcluster.kubeapi import Kube
from testcluster.run import check_environment, environments
from tests.support import clusters
from tests.support.clusters import EU, US

from .conftest import write_env


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clusters.fleet(tmp_path_factory.mktemp("fleet"))


def test_each_cluster_folder_is_applied_and_scaled_to_its_own_bounds(
    fleet: Path, kube: Kube, tmp_path: Path
) -> None:
    dist = fleet / "dist"
    assert environments(dist) == ["dev", f"prod/{EU}", f"prod/{US}", "stage"]
    prod = yaml.safe_load((fleet / "overlays" / "prod.yaml").read_text())
    most = {EU: clusters.EU_BOUNDS[1], US: prod["services"]["inference"]["autoscaling"]["maxReplicas"]}
    admitted: dict[str, int] = {}
    for cluster in (EU, US):
        source = dist / "prod" / cluster
        docs = {p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted(source.glob("*.yaml"))}
        # a namespace of its own on the session's apiserver, as the mutants get
        folder = write_env(docs, tmp_path / cluster, rename_namespace=(prod["namespace"], f"fleet-{cluster}"))
        result = check_environment(kube, folder, expected=expected_warnings(), boot_check=False)
        assert result.folder.failures == [], (cluster, result.folder.failures)
        assert len(result.folder.applied) == len(load_folder(source)), cluster
        deployment = f"Deployment fleet-{cluster}/inference"
        (admitted[cluster],) = [n for label, n in result.pods.items() if label.endswith(deployment)]
    # the pods admitted at maximum scale differ by the clusters' maxReplicas (a rollout's surge is in both)
    assert admitted[US] - admitted[EU] == most[US] - most[EU], admitted
