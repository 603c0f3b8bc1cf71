"""`make image`: every image of definitions.IMAGES as an OCI image layout under build/images/<name>/.

Steps: each Debian base with mmdebstrap (cached by what its bytes depend on, checked against its lock);
one staging root per base, where the image's own Python (chroot) makes and installs the virtualenv and
compiles the app; each layer written deterministically (layers.py); then umoci assembles the layout
(`init`, `new`, `raw add-layer` per layer, `config`, `gc`) with every created time set to SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from imagebuild import debian, layers, wheels
from imagebuild.definitions import (
    APP,
    MODELS,
    REPO_ROOT,
    SOURCE_DATE_EPOCH,
    VENV,
    Base,
    Image,
)
from imagebuild.errors import BuildError
from inference_service.grpc import stubs

TAG = "latest"
CREATED = datetime.fromtimestamp(SOURCE_DATE_EPOCH, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
APP_SOURCES = {  # folder in the repository -> folder in the image
    # the service, and the model-source init container's `python -m inference_service.fetch`; the model build
    # (model_build) is a build tool and stays out of the image
    REPO_ROOT / "apps" / "inference" / "inference_service": f"{APP}/inference_service",
}
LAYER_FOLDERS = {"venv": [VENV], "models": [MODELS], "app": [APP]}


@dataclass
class Built:
    name: str
    digest: str
    compressed: int  # manifest, config and layer blobs
    uncompressed: int  # the layers' tar archives
    layers: dict[str, tuple[int, int]]  # layer -> (compressed, uncompressed)


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise BuildError(f"{what} failed: {tail}")
    return done.stdout


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def base_tar(base: Base, cache: Path, *, relock: bool = False) -> Path:
    """The base's root filesystem tar, from the cache when its inputs are unchanged; `relock` builds it afresh
    and writes its lock instead of checking it."""
    cached = cache / f"base-{base.name}-{debian.cache_key(base)}.tar"
    if relock or not cached.is_file():
        start = time.monotonic()
        cache.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.stem}.partial.tar")  # mmdebstrap picks the format by suffix
        debian.build(base, partial)
        if relock:
            base.lock.write_text(debian.lock_text(base, partial), encoding="utf-8")
        Path(f"{partial}.release-dates").replace(f"{cached}.release-dates")
        partial.replace(cached)
        _say(f"base {base.name}: mmdebstrap in {time.monotonic() - start:.0f} s")
    debian.check_lock(base, cached)
    return cached


def _chroot(root: Path, argv: list[str], what: str) -> None:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH),  # compileall writes hash-checked .pyc (no mtimes)
        "LC_ALL": "C.UTF-8",
        "HOME": "/tmp",
    }
    _run(["chroot", str(root), *argv], what, env)


def stage(base: Base, tar: Path, work: Path, wheel_dir: Path | None, models: Path | None) -> Path:
    """The base unpacked, with /models (when given), /opt/venv and /app (when wheels are given) inside it."""
    root = work / f"root-{base.name}"
    root.mkdir(parents=True)
    _run(["tar", "-xf", str(tar), "-C", str(root), "--numeric-owner"], f"unpacking the {base.name} base")
    if models is not None:
        shutil.copytree(models, root / MODELS.lstrip("/"))
    if wheel_dir is None:
        return root
    shutil.copytree(wheel_dir, root / "tmp" / "wheels")
    shutil.copy(wheels.LOCK, root / "tmp" / "requirements.lock")
    _chroot(root, ["python3", "-m", "venv", "--without-pip", VENV], "creating the virtualenv")
    pip_wheel = next(wheel_dir.glob("pip-*.whl"), None)
    if pip_wheel is None:
        raise BuildError(f"{wheels.LOCK} locks no pip wheel: the virtualenv is installed with it")
    _chroot(
        root,
        [
            f"{VENV}/bin/python",
            f"/tmp/wheels/{pip_wheel.name}/pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links=/tmp/wheels",
            "--require-hashes",
            "--no-deps",
            "--disable-pip-version-check",
            "-r",
            "/tmp/requirements.lock",
        ],
        "installing the locked wheels",
    )
    # every requirement of every installed distribution, judged by the image's own interpreter (the lock was
    # resolved on this machine's, whose markers may differ)
    _chroot(root, [f"{VENV}/bin/python", "-m", "pip", "check"], "pip check in the image")
    # the checkout's generated gRPC modules stay out: the image gets its own, made from the .proto here
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *stubs.GENERATED, ".*.partial")
    for source, target in APP_SOURCES.items():
        shutil.copytree(source, root / target.lstrip("/"), ignore=ignore)
    stubs.generate(root / APP.lstrip("/"))
    # bytecode now: the root filesystem is read-only at run time
    _chroot(root, ["python3", "-m", "compileall", "-q", APP], "compiling the app")
    return root


def _umoci(layout: Path, *args: str) -> str:
    return _run(["umoci", *args], f"umoci {args[0]} for {layout.name}")


def assemble(image: Image, layout: Path, root: Path, base: Path, work: Path) -> Built:
    ref = f"{layout}:{TAG}"
    _umoci(layout, "init", "--layout", str(layout))
    _umoci(layout, "new", "--image", ref)
    sizes: dict[str, int] = {"base": base.stat().st_size}
    tars = [("base", base)]
    for name in image.layers:
        out = work / f"{image.name}-{name}.tar"
        sizes[name] = layers.write_layer(out, root, LAYER_FOLDERS[name], SOURCE_DATE_EPOCH)
        tars.append((name, out))
    for name, tar in tars:
        _umoci(
            layout,
            "raw",
            "add-layer",
            "--image",
            ref,
            "--history.created",
            CREATED,
            "--history.created_by",
            f"imagebuild: {name} layer",
            str(tar),
        )
    config = [
        "config",
        "--image",
        ref,
        "--created",
        CREATED,
        "--history.created",
        CREATED,
        "--history.created_by",
        "imagebuild: config",
        "--os",
        "linux",
        "--architecture",
        "amd64",
        "--config.user",
        image.user,
        "--config.workingdir",
        image.workdir,
        "--config.stopsignal",
        "SIGTERM",
        "--clear=config.entrypoint",
        "--clear=config.cmd",
        "--clear=config.env",
    ]
    config += [f"--config.entrypoint={word}" for word in image.entrypoint]
    config += [f"--config.cmd={word}" for word in image.cmd]
    config += [f"--config.env={key}={value}" for key, value in sorted(image.env.items())]
    config += [f"--config.exposedports={port}" for port in image.ports]
    _umoci(layout, *config)
    _umoci(layout, "gc", "--layout", str(layout))
    return describe(image.name, layout, sizes, [name for name, _ in tars])


def _blob(layout: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":", 1)
    return layout / "blobs" / algorithm / hexdigest


def describe(name: str, layout: Path, sizes: dict[str, int], names: list[str]) -> Built:
    index = json.loads((layout / "index.json").read_text(encoding="utf-8"))
    descriptor = index["manifests"][0]
    manifest = json.loads(_blob(layout, descriptor["digest"]).read_text(encoding="utf-8"))
    compressed = descriptor["size"] + manifest["config"]["size"] + sum(x["size"] for x in manifest["layers"])
    per_layer = {n: (x["size"], sizes[n]) for n, x in zip(names, manifest["layers"], strict=True)}
    return Built(name, descriptor["digest"], compressed, sum(sizes.values()), per_layer)


def build_all(
    images: tuple[Image, ...], out: Path, cache: Path, models: Path, work_parent: Path | None = None
) -> list[Built]:
    """Every image into out/<name>/ (replaced only once all are built)."""
    if not (models / ".").is_dir():
        raise BuildError(f"{models} is missing: run `make models` first")
    os.umask(0o022)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="imagebuild-", dir=work_parent or out.parent))
    try:
        roots: dict[str, Path] = {}
        bases: dict[str, Path] = {}
        for image in images:
            base = image.base
            if base.name not in roots:
                bases[base.name] = base_tar(base, cache / "debian")
                needs = {layer for i in images if i.base == base for layer in i.layers}
                wheel_dir = wheels.download(cache / "wheels") if "venv" in needs else None
                model_dir = models if "models" in needs else None
                roots[base.name] = stage(base, bases[base.name], work, wheel_dir, model_dir)
        built = []
        staged = work / "layouts"
        for image in images:
            built.append(
                assemble(image, staged / image.name, roots[image.base.name], bases[image.base.name], work)
            )
        out.mkdir(exist_ok=True)
        for image in images:
            shutil.rmtree(out / image.name, ignore_errors=True)
            (staged / image.name).replace(out / image.name)
        return built
    finally:
        shutil.rmtree(work, ignore_errors=True)
