"""One environment on several clusters (`clusters:` in an overlay): a folder dist/<env>/<cluster>/ and an
Application per cluster, each cluster's changes applied there and nowhere else, the other environments as
they were. Expectations come from the spec edit (tests/support/clusters.py), not from the generator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.schema import SpecError, load_all, load_environment
from mlplatform.synth import Rendered, render, synthesize
from tests.support import clusters
from tests.support.clusters import EU, US


def _objects(files: dict[str, str | bytes]) -> list[dict[str, Any]]:
    return [yaml.safe_load(text) for name, text in files.items() if name.endswith(".yaml")]


@pytest.fixture
def two(spec_copy: Path, edit_yaml: Any) -> Path:
    edit_yaml(spec_copy / "overlays" / "prod.yaml", clusters.two_clusters)
    return spec_copy


@pytest.fixture
def placed(two: Path) -> Rendered:
    return render(two)


def test_each_cluster_has_its_folder_and_only_its_own_changes(
    placed: Rendered, rendered: Rendered, find_object: Any
) -> None:
    folders = placed.folders
    assert f"prod/{EU}" in folders and f"prod/{US}" in folders and "prod" not in folders
    # the cluster that changes nothing is prod as it was; the other environments are untouched
    diagram = "ARCHITECTURE.md"  # its title names the cluster
    assert {**folders[f"prod/{US}"], diagram: ""} == {**rendered.folders["prod"], diagram: ""}
    assert str(folders[f"prod/{US}"][diagram]).startswith(f"# mlplatform — prod on cluster {US}\n")
    assert folders["dev"] == rendered.folders["dev"] and folders["stage"] == rendered.folders["stage"]
    eu, us = _objects(folders[f"prod/{EU}"]), _objects(folders[f"prod/{US}"])
    assert find_object(eu, "HTTPRoute", "inference")["spec"]["hostnames"] == [clusters.EU_HOST]
    assert find_object(us, "HTTPRoute", "inference")["spec"]["hostnames"] != [clusters.EU_HOST]
    scaled = find_object(eu, "ScaledObject", "inference")["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == clusters.EU_BOUNDS
    assert find_object(us, "ScaledObject", "inference")["spec"]["maxReplicaCount"] != clusters.EU_BOUNDS[1]
    for name in ("redis",):
        claims = find_object(eu, "StatefulSet", name)["spec"]["volumeClaimTemplates"]
        assert {c["spec"]["storageClassName"] for c in claims} == {clusters.EU_STORAGE_CLASS}
    # nothing else differs between the two clusters but those objects (and the diagram that shows them)
    changed = {
        name
        for name in folders[f"prod/{EU}"]
        if folders[f"prod/{EU}"][name] != folders[f"prod/{US}"].get(name)
    }
    assert changed == {
        "httproute-inference.yaml",
        "scaledobject-inference.yaml",
        "statefulset-redis.yaml",
        "ARCHITECTURE.md",
    }


def test_an_application_per_cluster_with_its_destination_and_the_environments_windows(
    placed: Rendered, find_object: Any
) -> None:
    argocd = _objects(placed.folders["argocd"])
    repo = Path(__file__).resolve().parents[2]
    us_server = yaml.safe_load((repo / "overlays" / "prod.yaml").read_text())["cluster"]["server"]
    for cluster, server in ((EU, clusters.EU_SERVER), (US, us_server)):
        app = find_object(argocd, "Application", f"mlplatform-prod-{cluster}")
        assert app["spec"]["destination"] == {"namespace": "mlplatform-prod", "server": server}
        assert app["spec"]["source"]["path"] == f"dist/prod/{cluster}"
        assert app["metadata"]["labels"]["mlplatform.io/cluster"] == cluster
        # the cluster policies reach every cluster an environment runs on
        policies = [
            a
            for a in argocd
            if a["kind"] == "Application"
            and a["spec"]["source"]["path"] == "dist/cluster-policies"
            and a["spec"]["destination"]["server"] == server
        ]
        assert len(policies) == 1, cluster
    labels = {
        c: find_object(argocd, "Application", f"mlplatform-prod-{c}")["metadata"]["labels"] for c in (EU, US)
    }
    assert (
        labels[EU]["mlplatform.io/region"] == clusters.EU_REGION and "mlplatform.io/region" not in labels[US]
    )
    assert not [
        a for a in argocd if a["kind"] == "Application" and a["metadata"]["name"] == "mlplatform-prod"
    ]
    project = find_object(argocd, "AppProject", "mlplatform")["spec"]
    assert {"namespace": "mlplatform-prod", "server": clusters.EU_SERVER} in project["destinations"]
    # prod's sync window holds on both of its clusters
    prod_windows = [w for w in project["syncWindows"] if any("prod" in a for a in w["applications"])]
    assert prod_windows and all(
        sorted(w["applications"]) == [f"mlplatform-prod-{EU}", f"mlplatform-prod-{US}"] for w in prod_windows
    )


def test_synth_writes_the_cluster_folders_and_an_environment_alone_replaces_them_whole(two: Path) -> None:
    out = two / "dist"
    synthesize(two, out=out)
    assert sorted(p.name for p in (out / "prod").iterdir()) == [EU, US]
    (out / "prod" / "stale").mkdir()
    synthesize(two, out=out, only=["prod"])
    assert sorted(p.name for p in (out / "prod").iterdir()) == [EU, US]


def _problems(root: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_all(root)
    return info.value.lines


DEV_HOST = "<dev's host>"
DEV_SERVER = "<dev's server>"


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"cluster": {"server": "https://prod.k8s.example.com"}}, "cluster", "both are set"),
        ({"services": {"fraud": {"host": "f.example.com"}}}, "services.fraud", "no such service"),
        ({"services": {"inference": {"replicas": 2}}}, "services.inference.replicas", "autoscaling owns"),
        ({"services": {"inference": {"minReplicas": 99}}}, "services.inference.maxReplicas", "(99)"),
        ({"services": {"inference": {"host": DEV_HOST}}}, "services.inference.host", "overlays/dev.yaml"),
        ({"region": "Europe West"}, "region", "Europe West"),
        ({"server": DEV_SERVER, "namespace": "mlplatform-dev"}, "server", "overlays/dev.yaml"),
    ],
    ids=[
        "both",
        "unknown-service",
        "replicas-on-autoscaled",
        "bounds",
        "host-of-another-env",
        "region",
        "server",
    ],
)
def test_bad_clusters_are_one_line_each(
    two: Path, edit_yaml: Any, change: dict[str, Any], field: str, fragment: str
) -> None:
    """Each mistake in eu-west's entry is one line naming its field under clusters.eu-west (a clash with
    an environment whose file comes first: that file)."""
    other = {n: yaml.safe_load((two / "overlays" / f"{n}.yaml").read_text()) for n in ("dev", "stage")}
    known = {
        DEV_HOST: other["dev"]["services"]["inference"]["host"],
        DEV_SERVER: other["dev"]["cluster"]["server"],
    }

    def apply(data: dict[str, Any]) -> None:
        if "cluster" in change:
            data.update(change)
            return
        if "namespace" in change:  # the clash is on (server, namespace): prod's namespace becomes dev's
            data["namespace"] = change["namespace"]
        eu = data["clusters"][EU]
        for key, value in change.items():
            if key != "namespace":
                eu[key] = (
                    {s: {k: known.get(v, v) for k, v in c.items()} for s, c in value.items()}
                    if key == "services"
                    else known.get(value, value)
                )

    edit_yaml(two / "overlays" / "prod.yaml", apply)
    lines = [line for line in _problems(two) if line.startswith("overlays/prod.yaml:")]
    assert len(lines) == 1, lines
    where = field if field == "cluster" else f"clusters.{EU}.{field}"
    assert f": {where}: " in lines[0] and fragment in lines[0], lines[0]


def test_one_environment_at_a_time_is_refused_for_several_clusters(two: Path) -> None:
    with pytest.raises(SpecError, match="runs on 2 clusters"):
        load_environment("prod", repo_root=two)
    assert load_environment("stage", repo_root=two).cluster is None


def test_the_readme_example_is_a_valid_spec(spec_copy: Path, edit_yaml: Any) -> None:
    """README "One environment on several clusters": its `clusters` block, put in prod's overlay, loads."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in readme.split("```yaml\n")[1:] if b.startswith("# overlays/prod.yaml\nclusters:"))
    example = yaml.safe_load(block.split("```")[0])

    def use(data: dict[str, Any]) -> None:
        data.pop("cluster")
        data.update(example)

    edit_yaml(spec_copy / "overlays" / "prod.yaml", use)
    prod = [e for e in load_all(spec_copy) if e.name == "prod"]
    assert [e.folder for e in prod] == [f"prod/{c}" for c in sorted(example["clusters"])]
