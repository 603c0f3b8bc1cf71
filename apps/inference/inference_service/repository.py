"""The model repository on disk: which models and versions exist, which are live, and whether their bytes are
the ones their metadata.json records (`model_sha256`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from inference_service.repository_format import METADATA_FILE, ModelMetadata


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    """One live model version: where it is and what its metadata says."""

    name: str
    version: str
    path: Path
    metadata: ModelMetadata


class RepositoryError(ValueError):
    """The repository or INFERENCE_MODELS is wrong; the message names the path or entry."""


class ModelIntegrityError(RepositoryError):
    """A model file's bytes are not the ones its metadata.json records; the message names the file."""


def read_verified(entry: ModelEntry, file: str | None = None, sha256: str | None = None) -> bytes:
    """A file of the entry (by default its model file), after checking its sha256 against the metadata's.

    The caller loads these same bytes, so what is served is exactly what was checked (a file swapped between
    the check and the load cannot slip in)."""
    path = entry.path / (file or entry.metadata.model_file)
    expected = sha256 or entry.metadata.model_sha256
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelIntegrityError(f"{path}: cannot read it ({exc.strerror})") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ModelIntegrityError(
            f"{path}: sha256 {actual} does not match {expected} recorded in {entry.path / METADATA_FILE}; "
            f"refusing to serve {entry.name}:{entry.version}"
        )
    return data


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
