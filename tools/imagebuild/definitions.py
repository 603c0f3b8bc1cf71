"""The one definition of every image `dist/` runs: its base, its layers (bottom to top) and its config.

Layers are ordered by how often they change: the Debian base (package lock), the virtualenv (wheel lock), the
model repository (`make models`), then the app's code, so a change to the app rebuilds only the small top
layer. The config honours what the manifests assume (constructs/mlplatform/components): the entry point,
the user, PATH, the port, the model repository at /models, nothing writable but /tmp (an emptyDir there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGES_DIR = REPO_ROOT / "images"  # the committed lock files
#: Every timestamp in every image (file mtimes, config and history `created`). Fixed, not the commit time:
#: a commit that changes no input must not change a digest (the overlays pin them).
SOURCE_DATE_EPOCH = 1700000000
SUITE = "bookworm"
#: Left out of the base's root filesystem: documentation, never read at run time (dpkg path-exclude).
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VENV = "/opt/venv"
APP = "/app"
MODELS = "/models"
INFERENCE_UID = 10001
REDIS_UID = 10002  # non-root and >= 10000 (checkov CKV_K8S_40); the Redis construct runs it as this UID


@dataclass(frozen=True)
class Base:
    """A minimal Debian root filesystem (mmdebstrap, variant essential) with these packages on top."""

    name: str
    packages: tuple[str, ...]
    customize: tuple[str, ...] = ()  # shell commands run on the finished root filesystem ("$1" is its path)

    @property
    def lock(self) -> Path:
        return IMAGES_DIR / f"debian-{self.name}.lock"


@dataclass(frozen=True)
class Image:
    name: str  # the repository's last path component (ghcr.io/example/<name>)
    base: Base
    layers: tuple[str, ...]  # "venv", "models", "app": built by imagebuild.layers, in this order
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""
    env: dict[str, str] = field(default_factory=dict)
    ports: tuple[str, ...] = ()
    workdir: str = "/"


PYTHON = Base("python", ("python3", "ca-certificates", "libstdc++6"))
# /etc/redis is redis:redis 2770 in Debian; the image runs as REDIS_UID, which must reach its mounted config
REDIS = Base("redis", ("redis-server",), customize=('chmod 0755 "$1/etc/redis"',))

_PYTHON_ENV = {
    "PATH": f"{VENV}/bin:{BASE_PATH}",
    "PYTHONPATH": APP,
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
}

IMAGES = (
    Image(
        name="mlplatform-inference",
        base=PYTHON,
        layers=("venv", "models", "app"),
        entrypoint=("python", "-m", "inference_service"),
        user=f"{INFERENCE_UID}:{INFERENCE_UID}",
        env={**_PYTHON_ENV, "INFERENCE_MODEL_REPOSITORY": MODELS, "INFERENCE_PORT": "8080"},
        ports=("8080/tcp",),
    ),
    # The model repository alone, for the init container that fills a model-cache PVC (`cp -R /models/.`):
    # the same base and models layer as the inference image (the same blobs), no virtualenv, no app.
    Image(
        name="mlplatform-models",
        base=PYTHON,
        layers=("models",),
        entrypoint=("sh",),
        user=f"{INFERENCE_UID}:{INFERENCE_UID}",
        env={"PATH": BASE_PATH},
    ),
    Image(
        name="mlplatform-redis",
        base=REDIS,
        layers=(),
        entrypoint=("redis-server",),
        user=f"{REDIS_UID}:{REDIS_UID}",
        env={"PATH": BASE_PATH},
        ports=("6379/tcp",),
    ),
)
BASES = tuple({image.base.name: image.base for image in IMAGES}.values())
