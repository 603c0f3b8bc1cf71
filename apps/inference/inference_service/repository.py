"""The model repository on disk: which models and versions exist and which are live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from model_build.metadata import METADATA_FILE, ModelMetadata


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    """One live model version: where it is and what its metadata says."""

    name: str
    version: str
    path: Path
    metadata: ModelMetadata


class RepositoryError(ValueError):
    """The repository or INFERENCE_MODELS is wrong; the message names the path or entry."""


def _versions(model_dir: Path) -> list[str]:
    return sorted(
        (
            p.name
            for p in model_dir.iterdir()
            if p.is_dir() and p.name.isdigit() and (p / METADATA_FILE).is_file()
        ),
        key=int,
    )


def discover(root: Path, refs: list[tuple[str, str]]) -> list[ModelEntry]:
    """The live versions: the pairs in `refs`, or the latest version of every model when `refs` is empty."""
    refs = list(refs)
    if not root.is_dir():
        raise RepositoryError(f"model repository {root} does not exist or is not a directory")
    if not refs:
        for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            versions = _versions(model_dir)
            if versions:
                refs.append((model_dir.name, versions[-1]))
        if not refs:
            raise RepositoryError(f"model repository {root} holds no <model>/<version>/{METADATA_FILE}")
    entries = []
    seen: set[str] = set()
    for name, version in refs:
        if name in seen:
            raise RepositoryError(f"INFERENCE_MODELS names {name} twice; one live version per model")
        seen.add(name)
        folder = root / name / version
        meta_path = folder / METADATA_FILE
        if not meta_path.is_file():
            available = ", ".join(_versions(root / name) if (root / name).is_dir() else []) or "none"
            raise RepositoryError(f"{name}:{version}: {meta_path} not found (versions on disk: {available})")
        metadata = ModelMetadata.read(meta_path)
        if (metadata.name, metadata.version) != (name, version):
            raise RepositoryError(
                f"{meta_path}: says {metadata.name}:{metadata.version} but sits in {name}/{version}"
            )
        if not (folder / metadata.model_file).is_file():
            raise RepositoryError(f"{name}:{version}: {folder / metadata.model_file} not found")
        entries.append(ModelEntry(name=name, version=version, path=folder, metadata=metadata))
    return entries
