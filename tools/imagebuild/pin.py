"""`make image-pin ENV=<env>`: write the digests `make image` built into overlays/<env>.yaml.

Every digest the overlay pins is found with the repository it pins (`redis.imageDigest` and
`jobs.redis.imageDigest`: the platform's Redis image; `services.<name>[.canary].imageDigest`: that service's
image; an `image: repository@sha256:...` value: its own repository). Each is replaced in place, at the line
and column the YAML parser reports, so comments and layout stay; the built image is the layout under
build/images/ named after the repository's last path component.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from imagebuild.definitions import REPO_ROOT
from imagebuild.errors import BuildError

PLATFORM = REPO_ROOT / "overlays" / "platform.yaml"


@dataclass(frozen=True)
class Pinned:
    """One digest an overlay pins: where (line and columns of the 64 hex digits), for which repository."""

    path: str  # dotted field path, for messages
    repository: str
    digest: str
    line: int  # 0-based
    column: int  # where the hex digits start


def built_digest(images: Path, repository: str) -> str:
    """The digest of the image built for `repository` (its layout is build/images/<last path component>)."""
    name = repository.rsplit("/", 1)[-1]
    index = images / name / "index.json"
    if not index.is_file():
        raise BuildError(f"{index} is missing: no image built for {repository}; run `make image`")
    digest: str = json.loads(index.read_text(encoding="utf-8"))["manifests"][0]["digest"]
    return digest


def _walk(node: yaml.Node, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], yaml.ScalarNode]]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _walk(value, (*path, str(key.value)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _walk(item, (*path, str(i)))
    elif isinstance(node, yaml.ScalarNode):
        yield path, node


def _repository(path: tuple[str, ...], value: str, platform: dict[str, object]) -> str | None:
    if path[-1] == "image" and "@sha256:" in value:
        return value.split("@", 1)[0]
    if path[-1] != "imageDigest":
        return None
    redis = platform.get("redis")
    services = platform.get("services")
    if path[:1] in {("redis",), ("jobs",)} and isinstance(redis, dict):
        return str(redis["image"])
    if path[0] == "services" and isinstance(services, dict) and path[1] in services:
        return str(services[path[1]]["image"])
    raise BuildError(f"{'.'.join(path)}: no image repository is known for this digest")


def pinned(overlay: Path, platform_file: Path = PLATFORM) -> list[Pinned]:
    """Every digest `overlay` pins, with its repository (from platform.yaml where the field names none)."""
    platform = yaml.safe_load(platform_file.read_text(encoding="utf-8"))
    root = yaml.compose(overlay.read_text(encoding="utf-8"))
    found = []
    for path, node in _walk(root, ()) if root is not None else ():
        repository = _repository(path, str(node.value), platform)
        if repository is None:
            continue
        at = str(node.value).index("sha256:") + len("sha256:")
        digest = "sha256:" + str(node.value)[at:]
        start = node.start_mark.column + (1 if node.style in {'"', "'"} else 0)
        found.append(Pinned(".".join(path), repository, digest, node.start_mark.line, start + at))
    return found


def environments(overlays: Path) -> list[str]:
    """Every environment: each overlays/<env>.yaml but platform.yaml."""
    return sorted(p.stem for p in overlays.glob("*.yaml") if p.name != PLATFORM.name)


def pin(overlay: Path, images: Path) -> list[str]:
    """Rewrite `overlay` with the built digests; one line per change."""
    if not overlay.is_file():
        raise BuildError(f"{overlay}: no such environment overlay")
    lines = overlay.read_text(encoding="utf-8").split("\n")
    changes = []
    for p in pinned(overlay):
        new = built_digest(images, p.repository)
        line = lines[p.line]
        lines[p.line] = line[: p.column] + new.split(":", 1)[1] + line[p.column + 64 :]
        if new != p.digest:
            changes.append(f"{overlay.name}:{p.line + 1}: {p.path}: {p.repository}@{new}")
    overlay.write_text("\n".join(lines), encoding="utf-8")
    return changes or [f"{overlay.name}: already pins the built digests"]
