"""What is under dist/: the environments, their files and the objects in them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Folders of dist/ that are not environments.
ARGOCD = "argocd"
CLUSTER_POLICIES = "cluster-policies"
NOT_ENVIRONMENTS = frozenset({ARGOCD, CLUSTER_POLICIES})
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class DistError(Exception):
    """dist/ is missing or holds something that cannot be read."""


@dataclass
class Folder:
    """One folder of dist/: every file name in it and the Kubernetes objects of its manifest files."""

    name: str
    path: Path
    files: list[str]
    manifests: list[Path] = field(default_factory=list)
    # (kind, namespace, name) -> file name, to say where an engine's finding lives
    objects: dict[tuple[str, str, str], str] = field(default_factory=dict)


def environments(dist: Path) -> list[str]:
    if not dist.is_dir():
        raise DistError(f"{dist} does not exist or is not a folder; run `make synth` first")
    return sorted(p.name for p in dist.iterdir() if p.is_dir() and p.name not in NOT_ENVIRONMENTS)


def load_folder(dist: Path, name: str) -> Folder:
    path = dist / name
    if not path.is_dir():
        raise DistError(f"{path} does not exist; known environments: {', '.join(environments(dist))}")
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    folder = Folder(name=name, path=path, files=files)
    for rel in files:
        if "/" in rel or not rel.endswith(MANIFEST_SUFFIXES):
            continue
        file = path / rel
        for doc in _documents(file):
            if not (isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind")):
                continue
            meta = doc.get("metadata") or {}
            key = (str(doc["kind"]), str(meta.get("namespace", "")), str(meta.get("name", "")))
            folder.objects.setdefault(key, rel)
            if file not in folder.manifests:
                folder.manifests.append(file)
    return folder


def _documents(file: Path) -> list[Any]:
    try:
        with file.open(encoding="utf-8") as handle:
            return [d for d in yaml.load_all(handle, Loader=yaml.CSafeLoader) if d is not None]
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise DistError(f"{file}: not valid YAML/JSON: {err}") from err
