"""What identifies a build in an overlay, and copying it from one overlay to the next.

A build is the image digests an overlay pins (imagebuild's `pinned`: each with its repository and where it
is). For each service promoted, every digest under `services.<name>` (the canary's excepted: a canary is the
target's own rollout) takes the source's digest of the same repository; with no service named, the Redis
digests (`redis`, `jobs.redis`) go too. Model versions and their catalog entries live in platform.yaml and
the one model catalog, which every environment shares, so the digests are all that differs. Everything else
(replicas, resources, hosts, secrets, sync mode, canary) stays the target's. Each digest is replaced in
place at the line and column the YAML parser reports, so comments and layout stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagebuild.pin import Pinned, pinned


@dataclass(frozen=True)
class Change:
    field: str  # dotted path in the target overlay
    repository: str
    before: str
    after: str


def _promoted(p: Pinned, services: list[str] | None) -> bool:
    parts = p.path.split(".")
    if parts[0] == "services":
        return (services is None or parts[1] in services) and "canary" not in parts
    return services is None and parts[0] in {"redis", "jobs"}


def plan(source: Path, target: Path, services: list[str] | None, platform: Path) -> list[Change]:
    """Each digest of `target` that takes another value from `source` (same service, same repository)."""
    src = pinned(source, platform)
    changes = []
    for p in pinned(target, platform):
        if not _promoted(p, services):
            continue
        scope = p.path.split(".")[:2] if p.path.startswith("services.") else [p.path.split(".")[0]]
        same = [s for s in src if s.repository == p.repository and s.path.split(".")[: len(scope)] == scope]
        same = [s for s in same if "canary" not in s.path.split(".")]
        if same and same[0].digest != p.digest:
            changes.append(Change(p.path, p.repository, p.digest, same[0].digest))
    return changes


def apply(target: Path, changes: list[Change], platform: Path) -> None:
    lines = target.read_text(encoding="utf-8").split("\n")
    wanted = {c.field: c.after for c in changes}
    for p in pinned(target, platform):
        if p.path in wanted:
            line = lines[p.line]
            lines[p.line] = line[: p.column] + wanted[p.path].split(":", 1)[1] + line[p.column + 64 :]
    target.write_text("\n".join(lines), encoding="utf-8")
