"""point_addons_at: what the Argo CD test changes in the served dist/ so the add-ons read the mirror (the sync
itself is make argocd-test's)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from addons.collect import INFRASTRUCTURE, applications
from testcluster.addon_mirror import Mirror, point_addons_at
from testcluster.versions import REPO_ROOT

URL = "http://127.0.0.1:1/addons.git"


def _served(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "dist", tmp_path / "dist")
    return tmp_path


def _mirror(work: Path, cluster: str) -> Mirror:
    tags = {
        str(a["metadata"]["name"]): str(a["spec"]["source"]["targetRevision"])
        for a in applications(work / "dist")[cluster]
    }
    return Mirror(URL, cluster, tags, frozenset(), 0)


def test_the_mirrored_clusters_addons_read_their_folder_at_their_own_revision(tmp_path: Path) -> None:
    work = _served(tmp_path)
    clusters = sorted(applications(work / "dist"))
    assert len(clusters) >= 2, f"the committed dist/ has add-ons for {clusters}: need two to drop one"
    before = applications(work / "dist")[clusters[0]]
    mirror = _mirror(work, clusters[0])
    point_addons_at(work, mirror)

    after = applications(work / "dist")
    assert sorted(after) == [clusters[0]], "the other clusters' add-ons are still served"
    for old, new in zip(before, after[clusters[0]], strict=True):
        name = new["metadata"]["name"]
        assert new["spec"]["source"] == {
            "repoURL": URL,
            "path": name,
            "targetRevision": old["spec"]["source"]["targetRevision"],
        }
        assert {k: v for k, v in new["spec"].items() if k != "source"} == {
            k: v for k, v in old["spec"].items() if k != "source"
        }, f"{name}: more than its source changed"
    projects = {
        d["metadata"]["name"]: d
        for p in (work / "dist" / "argocd").glob("appproject-*.yaml")
        for d in [yaml.safe_load(p.read_text(encoding="utf-8"))]
    }
    for project in {a["spec"]["project"] for a in before}:
        assert URL in projects[project]["spec"]["sourceRepos"]
    roots = [
        yaml.safe_load(p.read_text(encoding="utf-8"))
        for p in (work / "dist" / "argocd").glob("application-*.yaml")
    ]
    paths = {r["spec"]["source"].get("path") for r in roots}
    assert f"dist/{INFRASTRUCTURE}/{clusters[0]}" in paths
    assert not any(f"dist/{INFRASTRUCTURE}/{c}" in paths for c in clusters[1:]), (
        "a dropped cluster's app stays"
    )


def test_an_addon_whose_revision_moved_past_the_mirror_is_refused(tmp_path: Path) -> None:
    work = _served(tmp_path)
    cluster = sorted(applications(work / "dist"))[0]
    mirror = _mirror(work, cluster)
    name = sorted(mirror.applications)[0]
    stale = Mirror(URL, cluster, {**mirror.applications, name: "v0.0.1"}, frozenset(), 0)
    with pytest.raises(AssertionError, match=f"{name} reads .* the mirror has v0.0.1"):
        point_addons_at(work, stale)
