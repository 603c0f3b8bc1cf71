"""What is under dist/: the environments, their files and the objects in them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Folders of dist/ that are not environments.
ARGOCD = "argocd"
CLUSTER_POLICIES = "cluster-policies"
#: dist/infrastructure/<cluster>/: the add-ons' Argo CD Applications, checked like dist/argocd/.
INFRASTRUCTURE = "infrastructure"
#: dist/helm/<platform>/: the same environments as one Helm chart (checked by `make helm`: it renders dist/).
HELM = "helm"
NOT_ENVIRONMENTS = frozenset({ARGOCD, CLUSTER_POLICIES, INFRASTRUCTURE, HELM})
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present


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
    # (kind, namespace, name) -> the object's first and last line in its file (1-based), for SARIF and
    # annotations
    lines: dict[tuple[str, str, str], int] = field(default_factory=dict)
    end_lines: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # (kind, namespace, name) -> the object's YAML node (marks on every field), for a field's line
    nodes: dict[tuple[str, str, str], yaml.Node] = field(default_factory=dict)
    # (kind, namespace, name) -> the object's metadata.labels
    labels: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # every object as (file name, object), in file order
    documents: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def environments(dist: Path) -> list[str]:
    """The folders checked as environments: dist/<env>, or dist/<env>/<cluster> for each cluster of an
    environment that runs on several (a folder holding only folders)."""
    if not dist.is_dir():
        raise DistError(f"{dist} does not exist or is not a folder; run `make synth` first")
    found = []
    for env in sorted(p for p in dist.iterdir() if p.is_dir() and p.name not in NOT_ENVIRONMENTS):
        inside = list(env.iterdir())
        if inside and all(p.is_dir() for p in inside):
            found += sorted(f"{env.name}/{p.name}" for p in inside)
        else:
            found.append(env.name)
    return found


def argocd_folders(dist: Path) -> list[str]:
    """The folders of Argo CD's own objects: dist/argocd and each cluster's dist/infrastructure/<cluster>."""
    found = [ARGOCD] if (dist / ARGOCD).is_dir() else []
    infrastructure = dist / INFRASTRUCTURE
    if infrastructure.is_dir():
        found += sorted(f"{INFRASTRUCTURE}/{p.name}" for p in infrastructure.iterdir() if p.is_dir())
    return found


def environment_of(folder: str) -> str:
    """The environment whose folder (dist/<env>, or one of its clusters' dist/<env>/<cluster>) it is."""
    return folder.split("/", 1)[0]


def list_folder(dist: Path, name: str) -> Folder:
    """The folder's file names only (nothing read): enough for a cache key."""
    path = dist / name
    if not path.is_dir():
        raise DistError(f"{path} does not exist; known environments: {', '.join(environments(dist))}")
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    return Folder(name=name, path=path, files=files)


def load_folder(dist: Path, name: str) -> Folder:
    """The folder with every object of its manifest files read."""
    return read_objects(list_folder(dist, name))


def read_objects(folder: Folder) -> Folder:
    """Reads the objects of a listed folder's manifest files into it; returns it."""
    path, files = folder.path, folder.files
    for rel in files:
        if "/" in rel or not rel.endswith(MANIFEST_SUFFIXES):
            continue
        file = path / rel
        for doc, node in _documents(file):
            if not (isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind")):
                continue
            meta = doc.get("metadata") or {}
            key = (str(doc["kind"]), str(meta.get("namespace", "")), str(meta.get("name", "")))
            folder.objects.setdefault(key, rel)
            folder.lines.setdefault(key, node.start_mark.line + 1)
            folder.end_lines.setdefault(key, _last_line(node))
            folder.nodes.setdefault(key, node)
            folder.labels.setdefault(key, meta.get("labels") or {})
            folder.documents.append((rel, doc))
            if not folder.manifests or folder.manifests[-1] != file:  # files come one at a time: linear
                folder.manifests.append(file)
    return folder


def field_line(node: yaml.Node, path: Sequence[str | int]) -> int:
    """The line of the deepest part of `path` (keys and list indexes) under the object's node (0: none)."""
    line = 0
    for part in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child, line = value, key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _last_line(node: yaml.Node) -> int:
    """The last line holding the node's content (libyaml's end mark sits at the start of the next line)."""
    end = node.end_mark
    return end.line + 1 if end.column > 0 else max(end.line, node.start_mark.line + 1)


def _documents(file: Path) -> list[tuple[Any, yaml.Node]]:
    """The file's non-empty documents, each with its node (its marks give the lines it spans)."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DistError(f"{file}: not valid YAML/JSON: {err}") from err
    loader = _LOADER(text)
    docs: list[tuple[Any, yaml.Node]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                docs.append((loader.construct_document(node), node))
    except yaml.YAMLError as err:
        raise DistError(f"{file}: not valid YAML/JSON: {err}") from err
    finally:
        loader.dispose()
    return [(d, n) for d, n in docs if d is not None]
