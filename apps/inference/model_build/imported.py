"""Imported models into the model repository: the committed folder `apps/inference/models/<name>/<version>/`
copied as it is, once its model.onnx hashes to the catalog's sha256 and its metadata.json says the same.

The catalog is the trust anchor: a changed or swapped file in the committed folder stops the build with one
line, and the copy is byte for byte, so a fresh clone's `make models` gives the same build/models.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from inference_service.repository_format import METADATA_FILE, MODEL_FILE, ModelMetadata, sha256_file
from model_build.staging import staged_folder


class ImportedModelError(ValueError):
    """An imported version's committed files do not match the catalog."""


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def verify(folder: Path, name: str, version: str, sha256: str) -> None:
    label = f"{name}:{version}"
    if not (folder / MODEL_FILE).is_file() or not (folder / METADATA_FILE).is_file():
        raise ImportedModelError(
            f"{label}: the catalog lists it as imported, but {folder} lacks {MODEL_FILE} or {METADATA_FILE}; "
            "import it again (`make import-model`) or remove its catalog entry"
        )
    actual = sha256_file(folder / MODEL_FILE)
    if actual != sha256:
        raise ImportedModelError(
            f"{label}: {folder / MODEL_FILE} has sha256 {actual}, the catalog says {sha256}; "
            "the committed file is not the model that was imported"
        )
    meta = ModelMetadata.read(folder / METADATA_FILE)
    if (meta.name, meta.version, meta.model_sha256) != (name, version, sha256):
        raise ImportedModelError(
            f"{label}: {folder / METADATA_FILE} describes {meta.name}:{meta.version} "
            f"(sha256 {meta.model_sha256}), not the catalog's entry"
        )


def copy_into(store: Path, out: Path, name: str, version: str, sha256: str) -> bool:
    """Verifies the committed folder and copies it to `<out>/<name>/<version>`; False when already there."""
    source, target = store / name / version, out / name / version
    verify(source, name, version, sha256)
    if target.is_dir() and _files(target) == _files(source):
        return False
    with staged_folder(target) as staging:
        for file in sorted(source.iterdir()):
            if file.is_file():
                shutil.copyfile(file, staging / file.name)
    return True
