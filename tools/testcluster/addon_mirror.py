"""The add-ons' upstream sources, mirrored on the Argo CD test's loopback git server.

The add-on Applications in dist/infrastructure/<cluster>/ read the projects' chart repositories and git tags,
which this machine cannot reach. For the cluster Argo CD runs in, the test serves instead what Argo CD's repo
server would render from them: `python -m addons` renders each Application from its pinned Go module (the
same renders the cluster test applies), one folder per Application in a second repository on the same server
(<server>/addons.git), tagged with each Application's own targetRevision. The served Applications keep their
name, destination, sync policy and targetRevision; only the source becomes that folder of the mirror (the
Helm values and kustomize edits are already in the render), and the infrastructure AppProject lists the mirror
among its source repositories.

Left out of the mirror, because no operator runs here to serve them: admission webhooks, aggregated APIs
(APIService) and Helm's install hooks (cert-manager's startupapicheck waits for its webhook). One CRD can be
withheld (the test's late CRD). The add-ons of the other clusters are not served (their Applications and
folders are removed from the served dist/): the harness installs those clusters' CRDs itself, which keeps the
test's CPU on this 2-core machine to one cluster's operators.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from addons.collect import INFRASTRUCTURE, applications, render_all
from testcluster.apply import load_all
from testcluster.gitserver import GitServer, git

NAME = "addons"
LEFT_OUT = frozenset({"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService"})
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class Mirror:
    url: str
    cluster: str  # the dist/infrastructure/ folder it serves
    applications: dict[str, str]  # add-on Application -> the tag (its targetRevision) it reads
    kinds: frozenset[tuple[str, str]]  # (group, kind) of every CRD the mirrored add-ons install
    left_out: int  # objects not mirrored (webhooks, APIServices, hooks, the withheld CRD)


def _crd_kind(obj: dict[str, Any]) -> tuple[str, str]:
    return str(obj["spec"]["group"]), str(obj["spec"]["names"]["kind"])


def _folders(work: Path, cluster: str) -> tuple[Path, list[Path]]:
    """(dist/infrastructure/<cluster>, every other cluster's folder)."""
    root = work / "dist" / INFRASTRUCTURE
    others = sorted(p for p in root.iterdir() if p.is_dir() and p.name != cluster)
    return root / cluster, others


def _drop_other_clusters(work: Path, others: list[Path]) -> None:
    """Remove the other clusters' add-on folders and the root's Applications that point at them."""
    paths = {f"dist/{INFRASTRUCTURE}/{p.name}" for p in others}
    for path in sorted((work / "dist" / "argocd").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if doc.get("kind") == "Application" and doc["spec"].get("source", {}).get("path") in paths:
            path.unlink()
    for folder in others:
        shutil.rmtree(folder)


def _allow_source(work: Path, project: str, url: str) -> None:
    for path in sorted((work / "dist" / "argocd").glob("appproject-*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if doc["metadata"]["name"] == project:
            doc["spec"]["sourceRepos"] = [*doc["spec"]["sourceRepos"], url]
            path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
            return
    raise AssertionError(f"dist/argocd/ has no AppProject {project} for the add-ons")


def mirror_addons(served: GitServer, cluster: str, *, withheld: set[tuple[str, str]]) -> Mirror:
    """Render `cluster`'s add-ons from served.work/dist/ and push them to <server>/addons.git, a tag per
    targetRevision. `point_addons_at` then points the served dist/ at the mirror."""
    url = served.url.rsplit("/", 1)[0] + f"/{NAME}.git"
    renders = render_all(served.work / "dist")[cluster]
    work = served.bare.parent.parent / f"{NAME}-work"
    work.mkdir()
    git(work, "init", "-q", "--initial-branch=main")
    git(work, "config", "user.name", "argocd-test")
    git(work, "config", "user.email", "argocd-test@localhost")
    kinds: set[tuple[str, str]] = set()
    left_out = 0
    for r in renders:
        kept = [
            o
            for o in r.objects
            if o["kind"] not in LEFT_OUT
            and not (o["kind"] == "CustomResourceDefinition" and _crd_kind(o) in withheld)
        ]
        left_out += len(r.objects) - len(kept) + len(r.hooks)
        kinds |= {_crd_kind(o) for o in kept if o["kind"] == "CustomResourceDefinition"}
        (work / r.application).mkdir()
        (work / r.application / "objects.yaml").write_text(
            yaml.dump_all(kept, Dumper=_DUMPER), encoding="utf-8"
        )
    git(work, "add", "--all")
    git(work, "commit", "-q", "-m", f"{cluster}'s add-ons as rendered from their pinned modules")
    tags = {
        str(app["metadata"]["name"]): str(app["spec"]["source"]["targetRevision"])
        for app in applications(served.work / "dist")[cluster]
    }
    if set(tags) != {r.application for r in renders}:
        raise AssertionError(f"rendered {sorted(r.application for r in renders)}, served {sorted(tags)}")
    for tag in sorted(set(tags.values())):
        git(work, "tag", tag)
    bare = served.bare.parent / f"{NAME}.git"
    git(served.bare.parent, "init", "-q", "--bare", "--initial-branch=main", str(bare))
    git(work, "push", "-q", "--tags", str(bare), "main:refs/heads/main")
    return Mirror(url, cluster, tags, frozenset(kinds), left_out)


def point_addons_at(work: Path, mirror: Mirror) -> None:
    """In a synthesized dist/: the mirrored cluster's add-on Applications read their folder of the mirror at
    their own targetRevision, their AppProject allows the mirror, and the other clusters' add-ons are gone."""
    folder, others = _folders(work, mirror.cluster)
    projects = set()
    for path in sorted(folder.glob("*.yaml")):
        docs = [d for d in load_all(path.read_text(encoding="utf-8")) if d]
        for app in docs:
            name = str(app["metadata"]["name"])
            if app.get("kind") != "Application" or name not in mirror.applications:
                raise AssertionError(
                    f"{path.name}: not one of the mirrored add-ons {sorted(mirror.applications)}"
                )
            revision = str(app["spec"]["source"]["targetRevision"])
            if revision != mirror.applications[name]:
                raise AssertionError(f"{name} reads {revision}; the mirror has {mirror.applications[name]}")
            app["spec"]["source"] = {"repoURL": mirror.url, "path": name, "targetRevision": revision}
            projects.add(str(app["spec"]["project"]))
        path.write_text(yaml.dump_all(docs, Dumper=_DUMPER, sort_keys=False), encoding="utf-8")
    for project in sorted(projects):
        _allow_source(work, project, mirror.url)
    _drop_other_clusters(work, others)
