"""The model catalog: every model version the build makes, with the sha256 of its model.onnx and its source.

`apps/inference/model_build/catalog.json` is committed and written by `python -m model_build` (sorted keys,
two-space indent, trailing newline, so the same build gives the same bytes). The spec reads it to refuse model
versions that nothing builds; a test rebuilds every model and compares the result with the committed file byte
for byte, so the catalog cannot drift from what the build makes.

    {"models": {"<name>": {"<version>": {"sha256": "<hex of model.onnx>", "source": {"kind": "image"}}}}}

`source.kind` "image": the version is baked into the inference image's model repository by this build: from
a recipe, or, with `"imported": true`, from the committed folder `apps/inference/models/<name>/<version>/`
that `python -m model_build import` wrote (its model.onnx must hash to the entry's sha256; the build copies
the folder into the repository and refuses it otherwise).
Entries with another source (`oci`, `https`, `pvc`: a tar of the version folder and its sha256, fetched and
verified by `inference_service.fetch` in the pod's init container) are registered by hand and kept by every
build.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

#: The committed catalog, from the repository root: the one definition of its path (the gate joins it to the
#: root of the checkout it reads, which may be a copy).
CATALOG_PATH = "apps/inference/model_build/catalog.json"
CATALOG_FILE = Path(__file__).resolve().parent / Path(CATALOG_PATH).name
#: Where imported models' files are committed: <name>/<version>/ (model.onnx, metadata.json, tokenizer.json).
IMPORTED_DIR = Path(__file__).resolve().parents[1] / "models"

Catalog = dict[str, dict[str, dict[str, Any]]]  # name -> version -> entry


def entry(sha256: str) -> dict[str, Any]:
    """The catalog entry of a version the build bakes into the image."""
    return {"sha256": sha256, "source": {"kind": "image"}}


def imported_entry(sha256: str) -> dict[str, Any]:
    """The catalog entry of an imported version (its files committed under IMPORTED_DIR)."""
    return {"sha256": sha256, "source": {"kind": "image", "imported": True}}


def is_imported(item: dict[str, Any]) -> bool:
    source = item.get("source")
    return isinstance(source, dict) and source.get("kind") == "image" and source.get("imported") is True


def is_built(item: dict[str, Any]) -> bool:
    """Whether a recipe of the build makes this entry; imported and registered ones are kept as they are."""
    source = item.get("source")
    return (not isinstance(source, dict) or source.get("kind") == "image") and not is_imported(item)


def check_import(path: Path, name: str, version: str) -> None:
    """Refuses to import over a version that a recipe builds or a registered source provides."""
    current = read(path).get(name, {}).get(version)
    if current is not None and not is_imported(current):
        kind = (current.get("source") or {}).get("kind")
        raise ValueError(
            f"{path}: {name}:{version} is already in the catalog (source {kind}, not imported); "
            "pick another --version or --name"
        )


def record_import(path: Path, name: str, version: str, sha256: str, *, force: bool = False) -> bool:
    """Adds (or confirms) an imported version; refuses one the catalog has with another sha256 unless
    `force` (the same rule as the version folder: a version is immutable)."""
    check_import(path, name, version)
    models = read(path)
    current = models.get(name, {}).get(version)
    if current is not None and current != imported_entry(sha256) and not force:
        raise ValueError(
            f"{path}: {name}:{version} is already in the catalog with sha256 {current.get('sha256')}; "
            "a version is immutable: import it as a new version (or --force)"
        )
    models.setdefault(name, {})[version] = imported_entry(sha256)
    return _write_bytes(path, to_bytes(models))


def to_bytes(models: Catalog) -> bytes:
    """Canonical bytes: sorted keys, two-space indent, trailing newline."""
    return orjson.dumps({"models": models}, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def read(path: Path) -> Catalog:
    """The models of a catalog file; an absent file is an empty catalog."""
    if not path.is_file():
        return {}
    try:
        document = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    models = document.get("models") if isinstance(document, dict) else None
    if not isinstance(models, dict):
        raise ValueError(f'{path}: expected {{"models": {{name: {{version: entry}}}}}}')
    return models


def write(path: Path, *, built: dict[tuple[str, str], str], known: set[tuple[str, str]]) -> bool:
    """Records the sha256 of every version built in this run and keeps the entries of known versions that
    were not (a `--only` build) and every registered (not built) source; built versions no recipe makes any
    more are dropped. Writes atomically and only
    when the bytes change; returns whether it wrote."""
    models: Catalog = {}
    for name, versions in read(path).items():
        for version, item in versions.items():
            if (name, version) in known or not is_built(item):
                models.setdefault(name, {})[version] = item
    for (name, version), sha256 in built.items():
        models.setdefault(name, {})[version] = entry(sha256)
    return _write_bytes(path, to_bytes(models))


def _write_bytes(path: Path, data: bytes) -> bool:
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    staging = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        staging.chmod(0o644)
        staging.replace(path)
    finally:
        staging.unlink(missing_ok=True)
    return True
