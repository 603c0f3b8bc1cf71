"""Local stand-ins for the images dist/ runs: what each one's filesystem, environment and entry point are.

The inference image is read from its Dockerfile (final stage: ENV, ENTRYPOINT, CMD, USER, COPY), with its
build stages standing for what they produce here: the `deps` stage's virtualenv is this clone's `.venv`
(installed from the same constraints.txt) and the `models` stage's /models is `make models`' build/models.
Redis runs Debian's redis-server binaries from the host, which the root bind of /usr provides.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from testcluster.errors import ClusterTestError
from testcluster.versions import REPO_ROOT

DOCKERFILE = REPO_ROOT / "apps" / "inference" / "Dockerfile"
MODEL_REPOSITORY = REPO_ROOT / "build" / "models"
#: What each build stage of the Dockerfile produces, here.
STAGE_OUTPUTS = {"deps": {"/opt/venv": REPO_ROOT / ".venv"}, "models": {"/models": MODEL_REPOSITORY}}
#: The base image's PATH, which `ENV PATH=...:$PATH` extends.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Image:
    name: str
    content: dict[str, Path] = field(default_factory=dict)  # path in the image -> local file or folder
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    user: tuple[int, int] | None = None


def _words(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        words: list[str] = json.loads(value)
        return words
    return ["/bin/sh", "-c", value]


def _env_pairs(value: str, env: dict[str, str]) -> dict[str, str]:
    pairs = {}
    for token in shlex.split(value.replace("\\\n", " ")):
        key, _, val = token.partition("=")
        pairs[key] = val.replace("$PATH", env.get("PATH", BASE_PATH))
    return pairs


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        current += (" " if current else "") + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            lines.append(current)
            current = ""
    return lines


def from_dockerfile(path: Path, stage: str | None = None) -> Image:
    """The final stage (or `stage`) of a Dockerfile, as far as running it locally needs."""
    stages: dict[str, Image] = {}
    image: Image | None = None
    for line in _logical_lines(path.read_text(encoding="utf-8")):
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else f"stage{len(stages)}"
            base = stages.get(words[0])
            image = Image(
                name=name, content=dict(base.content) if base else {}, env=dict(base.env) if base else {}
            )
            image.content.update({k: v for k, v in STAGE_OUTPUTS.get(name, {}).items()})
            stages[name] = image
        elif image is None:
            continue
        elif instr == "ENV":
            image.env.update(_env_pairs(rest, image.env))
        elif instr == "ENTRYPOINT":
            image.entrypoint = _words(rest)
        elif instr == "CMD":
            image.cmd = _words(rest)
        elif instr == "USER":
            uid, _, gid = rest.strip().partition(":")
            image.user = (int(uid), int(gid or uid))
        elif instr == "COPY":
            words = [w for w in rest.split() if not w.startswith("--chown")]
            source_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            words = [w for w in words if not w.startswith("--")]
            *sources, dest = words
            for src in sources:
                if source_stage is not None:
                    local = STAGE_OUTPUTS.get(source_stage, {}).get(src)
                    if local is None:
                        raise ClusterTestError(
                            f"{path}: COPY --from={source_stage} {src}: no local stand-in for it"
                        )
                    image.content[dest] = local
                else:
                    target = dest.rstrip("/") + "/" + Path(src).name if dest.endswith("/") else dest
                    image.content[target] = REPO_ROOT / src
    if image is None or (stage and stage not in stages):
        raise ClusterTestError(f"{path}: no stage {stage or '(final)'}")
    return stages[stage] if stage else image


def image_for(reference: str) -> Image:
    """The local stand-in for an image reference (registry/repository@digest)."""
    repository = (
        reference.split("@", 1)[0].rsplit(":", 1)[0] if "@" in reference else reference.split(":", 1)[0]
    )
    short = repository.rsplit("/", 1)[-1]
    if short == "mlplatform-inference":
        return from_dockerfile(DOCKERFILE)
    if short == "mlplatform-models":
        return from_dockerfile(DOCKERFILE, stage="models")
    if short == "redis":
        return Image(name="redis")
    raise ClusterTestError(f"no local stand-in for image {reference}; add one to {__file__}")
