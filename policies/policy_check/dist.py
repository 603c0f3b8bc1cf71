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
    # (kind, namespace, name) -> the object's first line in its file (1-based), for SARIF and annotations
    lines: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # every object as (file name, object), in file order
    documents: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


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
        for doc, line in _documents(file):
            if not (isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind")):
                continue
            meta = doc.get("metadata") or {}
            key = (str(doc["kind"]), str(meta.get("namespace", "")), str(meta.get("name", "")))
            folder.objects.setdefault(key, rel)
            folder.lines.setdefault(key, line)
            folder.documents.append((rel, doc))
            if file not in folder.manifests:
                folder.manifests.append(file)
    return folder


def _documents(file: Path) -> list[tuple[Any, int]]:
    """The file's non-empty documents, each with the line its content starts on."""
    try:
        text = file.read_text(encoding="utf-8")
        docs = list(yaml.load_all(text, Loader=yaml.CSafeLoader))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise DistError(f"{file}: not valid YAML/JSON: {err}") from err
    # where each document's content starts: the first line after a `---` (or the file's start) that is
    # neither blank nor a comment; a document without such a line is an empty one
    starts: list[int | None] = []
    current: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("---") and line[3:].strip() in ("", "|", ">"):
            if starts or current is not None:  # a leading `---` only opens the first document
                starts.append(current)
            current = None
        elif current is None and line.strip() and not line.lstrip().startswith("#"):
            current = number
    starts.append(current)
    if len(starts) != len(docs):  # a separator the scan misread: fall back to the file's first line
        starts = [1] * len(docs)
    return [(d, line or 1) for d, line in zip(docs, starts, strict=True) if d is not None]
