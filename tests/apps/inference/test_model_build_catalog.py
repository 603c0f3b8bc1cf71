"""The committed model catalog is exactly what a fresh build of every model writes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import orjson

from inference_service.repository_format import sha256_file
from model_build import catalog
from model_build.__main__ import RECIPES, main


def committed_catalog() -> bytes:
    """The catalog as committed at HEAD, or the file on disk outside a git checkout. (`make models` rewrites
    the file on disk, so only the committed bytes show a build that drifted from what was committed.)"""
    path = catalog.CATALOG_FILE
    git = shutil.which("git")
    if git is not None:
        inside = subprocess.run([git, "-C", str(path.parent), "rev-parse", "--show-prefix"],
                                capture_output=True, text=True, check=False)  # fmt: skip
        if inside.returncode == 0:
            shown = subprocess.run([git, "-C", str(path.parent), "show", f"HEAD:./{path.name}"],
                                   capture_output=True, check=False)  # fmt: skip
            assert shown.returncode == 0, f"{path} is not committed: {shown.stderr.decode().strip()}"
            return shown.stdout
    return Path(path).read_bytes()


def test_a_fresh_build_reproduces_the_committed_catalog(tmp_path) -> None:
    written = tmp_path / "catalog.json"
    assert main(["--out", str(tmp_path / "models"), "--catalog", str(written)]) == 0
    hint = "run `make models` and commit apps/inference/model_build/catalog.json"
    assert written.read_bytes() == catalog.CATALOG_FILE.read_bytes(), f"the catalog on disk is stale: {hint}"
    assert written.read_bytes() == committed_catalog(), f"the committed catalog is stale: {hint}"
    models = orjson.loads(written.read_bytes())["models"]
    listed = {(name, version) for name, versions in models.items() for version in versions}
    assert listed == {(r.name, r.version) for r in RECIPES}
    for name, version in listed:  # the hashes are those of the files the build wrote, not of metadata alone
        assert models[name][version] == {
            "sha256": sha256_file(tmp_path / "models" / name / version / "model.onnx"),
            "source": {"kind": "image"},
        }


def test_every_catalogued_version_is_served_from_the_built_repository(model_repository) -> None:
    # What the spec may name (prod's canary asks for breast-cancer:2): each loads, passes the sha256 check
    # against the catalogued digest and answers its warm-up row.
    from inference_service.repository import discover
    from inference_service.sessions import load_model
    from inference_service.settings import Settings

    models = catalog.read(catalog.CATALOG_FILE)
    refs = [(name, version) for name, versions in sorted(models.items()) for version in sorted(versions)]
    assert ("breast-cancer", "2") in refs
    settings = Settings(model_repository=model_repository, auth_enabled=False)
    for name, version in refs:
        (entry,) = discover(model_repository, [(name, version)])
        assert entry.metadata.model_sha256 == models[name][version]["sha256"]
        served = load_model(entry, settings)
        (result,) = served.run_rows([served.warmup_row()])
        assert len(result) == len(entry.metadata.outputs)


def test_a_partial_build_keeps_the_other_entries_and_drops_unknown_ones(tmp_path) -> None:
    path = tmp_path / "catalog.json"
    stale = {"breast-cancer": {"1": catalog.entry("0" * 64), "7": catalog.entry("1" * 64)},
             "minilm-embedding": {"1": catalog.entry("2" * 64)}}  # fmt: skip
    path.write_bytes(catalog.to_bytes(stale))
    assert main(["--out", str(tmp_path / "models"), "--only", "breast-cancer", "--catalog", str(path)]) == 0
    models = orjson.loads(path.read_bytes())["models"]
    assert sorted(models["breast-cancer"]) == ["1", "2"]  # version 7 is built by no recipe: dropped
    built = tmp_path / "models/breast-cancer/1/model.onnx"
    assert models["breast-cancer"]["1"]["sha256"] == sha256_file(built)
    assert models["minilm-embedding"]["1"]["sha256"] == "2" * 64  # not built in this run: kept
    assert path.read_bytes() == catalog.to_bytes(models)  # canonical bytes
