"""The images dist/ runs, as `make image` built them: found by digest in build/images/, unpacked, and read.

Each OCI image layout under build/images/ (index.json, blobs/) is read here by the OCI image spec alone, not
with the build's code: the manifest a reference's digest names, its config (entry point, command, user,
environment, working folder) and its layers, applied in order (whiteouts included) into a root filesystem that
is unpacked once per digest and shared read-only by every container that runs it. A reference whose digest no
build made is refused with one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from testcluster.errors import ClusterTestError
from testcluster.versions import REPO_ROOT

IMAGES = REPO_ROOT / "build" / "images"
UNPACKED = IMAGES / ".unpacked"  # <digest hex>/rootfs, one per image digest
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass
class Image:
    reference: str
    rootfs: Path
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    user: tuple[int, int] | None = None
    workdir: str = "/"


def _blob(layout: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":", 1)
    return layout / "blobs" / algorithm / hexdigest


def built() -> dict[str, Path]:
    """Every image manifest digest under build/images/ -> the layout that holds it."""
    found = {}
    for index in sorted(IMAGES.glob("*/index.json")):
        for descriptor in json.loads(index.read_text(encoding="utf-8")).get("manifests", []):
            found[str(descriptor["digest"])] = index.parent
    return found


def _apply(tar: tarfile.TarFile, root: Path) -> None:
    """One layer onto `root`: whiteouts delete what lower layers put there, the rest is extracted."""
    for member in tar:
        path = PurePosixPath(member.name.lstrip("./") or ".")
        if ".." in path.parts:
            raise ClusterTestError(f"layer entry {member.name} leaves the root filesystem")
        name = path.name
        if name == OPAQUE:
            folder = root / path.parent
            for child in folder.iterdir() if folder.is_dir() else ():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        elif name.startswith(WHITEOUT):
            target = root / path.parent / name[len(WHITEOUT) :]
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
        else:
            tar.extract(member, root, numeric_owner=True, filter="tar")


def _unpack(layout: Path, manifest: dict[str, object], target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    partial.chmod(0o755)
    for layer in manifest["layers"]:  # type: ignore[attr-defined]
        path = _blob(layout, layer["digest"])
        opener = gzip.open if layer["mediaType"].endswith("+gzip") else open
        with opener(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            _apply(tar, partial)
    partial.rename(target)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def image_for(reference: str) -> Image:
    """The built image a reference (registry/repository@sha256:...) names, unpacked."""
    if "@" not in reference:
        raise ClusterTestError(f"image {reference} is not pinned by digest")
    digest = reference.split("@", 1)[1]
    layouts = built()
    if digest not in layouts:
        have = ", ".join(f"{layout.name}@{d}" for d, layout in sorted(layouts.items())) or "none"
        raise ClusterTestError(
            f"image {reference}: no image built by `make image` has this digest (built: {have}); "
            "run `make image`, then `make image-pin ENV=<env>` and `make synth`"
        )
    layout = layouts[digest]
    manifest = json.loads(_blob(layout, digest).read_text(encoding="utf-8"))
    config = json.loads(_blob(layout, manifest["config"]["digest"]).read_text(encoding="utf-8"))
    rootfs = UNPACKED / digest.split(":", 1)[1] / "rootfs"
    with _locked(UNPACKED):
        if not rootfs.is_dir():
            _unpack(layout, manifest, rootfs)
    c = config.get("config") or {}
    user = None
    if c.get("User"):
        uid, _, gid = str(c["User"]).partition(":")
        user = (int(uid), int(gid or uid))
    return Image(
        reference=reference,
        rootfs=rootfs,
        env=dict(item.split("=", 1) for item in c.get("Env") or []),
        entrypoint=list(c.get("Entrypoint") or []),
        cmd=list(c.get("Cmd") or []),
        user=user,
        workdir=c.get("WorkingDir") or "/",
    )
