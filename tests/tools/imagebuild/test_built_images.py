"""The digests dist/ and the overlays name are the ones `make image` builds, and a second build from empty
caches (a fresh Debian base from the mirror, a fresh staging root, fresh layouts) gives the same digests and
the same SBOMs.

Both read build/images/, which `make image` (a prerequisite of `make test`) writes.
"""

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
IMAGES = ROOT / "build" / "images"
NOT_ENVIRONMENTS = {"argocd", "cluster-policies", "helm"}
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def built(folder: Path) -> dict[str, str]:
    """Layout name -> the digest of its image, read from each OCI layout's index.json."""
    found = {}
    for index in sorted(folder.glob("*/index.json")):
        manifests = json.loads(index.read_text())["manifests"]
        assert len(manifests) == 1, f"{index}: one image per layout"
        found[index.parent.name] = manifests[0]["digest"]
    if not found:
        pytest.fail(f"no image in {folder}: run `make image` first")
    return found


def test_every_image_dist_deploys_is_a_built_one() -> None:
    images = built(IMAGES)
    seen = set()
    for env in sorted(p for p in (ROOT / "dist").iterdir() if p.is_dir() and p.name not in NOT_ENVIRONMENTS):
        for manifest in sorted(env.glob("*.yaml")):
            for doc in yaml.safe_load_all(manifest.read_text()):
                spec = ((doc or {}).get("spec") or {}).get("template", {}).get("spec") or {}
                for container in [*spec.get("containers", []), *spec.get("initContainers", [])]:
                    repository, _, digest = container["image"].partition("@")
                    name = repository.rsplit("/", 1)[-1]
                    assert name in images, f"{manifest.relative_to(ROOT)}: {repository} is no image we build"
                    assert digest == images[name], (
                        f"{manifest.relative_to(ROOT)}: {container['image']}, but built: {images[name]}; "
                        f"run `make image-pin ENV={env.name}` and `make synth`"
                    )
                    seen.add(name)
    assert seen == set(images), f"built but never deployed: {set(images) - seen}"


def test_every_digest_an_overlay_pins_is_a_built_one() -> None:
    digests = set(built(IMAGES).values())
    for overlay in sorted((ROOT / "overlays").glob("*.yaml")):
        for number, line in enumerate(overlay.read_text().splitlines(), 1):
            for digest in DIGEST.findall(line):
                assert digest in digests, (
                    f"overlays/{overlay.name}:{number}: {digest} is no digest `make image` built; "
                    f"run `make image-pin ENV={overlay.stem}`"
                )


@pytest.mark.slow
def test_a_build_from_empty_caches_gives_the_same_digests(tmp_path: Path) -> None:
    """The Debian bases are made afresh by mmdebstrap (a reused base would prove nothing about them); only the
    wheel files may come from the shared cache, since pip checks each against the lock's sha256 anyway."""
    first = built(IMAGES)
    cache = tmp_path / "cache"
    cache.mkdir()
    shared_wheels = Path.home() / ".cache" / "mlplatform" / "images" / "wheels"
    if shared_wheels.is_dir():
        (cache / "wheels").symlink_to(shared_wheels)
    out = tmp_path / "images"
    done = subprocess.run(
        [sys.executable, "-m", "imagebuild", "build", "--out", str(out), "--cache", str(cache)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted((cache / "debian").glob("base-*.tar")), "the bases were not built afresh"
    assert built(out) == first
    for name in first:  # and the same SBOMs, byte for byte (syft run afresh on the fresh layouts)
        sbom = f"{name}.spdx.json"
        assert (out / sbom).read_bytes() == (IMAGES / sbom).read_bytes(), f"{sbom} differs"


def test_the_app_is_the_small_top_layer_of_the_inference_image() -> None:
    """A change to the service's code rebuilds only the last layer: the app's, and it is small."""
    layout = IMAGES / "mlplatform-inference"
    digest = built(IMAGES)["mlplatform-inference"]

    def blob(d: str) -> dict[str, Any]:
        return json.loads((layout / "blobs" / "sha256" / d.split(":", 1)[1]).read_text())

    manifest = blob(digest)
    config = blob(manifest["config"]["digest"])
    layered = [h["created_by"] for h in config["history"] if not h.get("empty_layer")]
    assert layered == [f"imagebuild: {n} layer" for n in ("base", "venv", "models", "app")]
    sizes = [layer["size"] for layer in manifest["layers"]]
    assert sizes[-1] < 2 * 2**20 and sizes[-1] * 50 < sum(sizes), sizes
    assert config["config"]["User"] == "10001:10001" and config["config"]["Entrypoint"][:2] == [
        "python",
        "-m",
    ]
    assert {h["created"] for h in config["history"]} == {config["created"]} == {"2023-11-14T22:13:20Z"}


def test_the_app_layer_carries_the_service_and_no_build_tool() -> None:
    """The runtime image holds the service (its init container's fetch included), not the model build."""
    layout = IMAGES / "mlplatform-inference"
    digest = built(IMAGES)["mlplatform-inference"]

    def blob_path(d: str) -> Path:
        return layout / "blobs" / "sha256" / d.split(":", 1)[1]

    manifest = json.loads(blob_path(digest).read_text())
    with tarfile.open(blob_path(manifest["layers"][-1]["digest"]), mode="r:*") as app:
        names = app.getnames()
    packages = {p for n in names for p in Path(n).parts if p in ("inference_service", "model_build")}
    assert packages == {"inference_service"}, sorted(names)[:20]
    assert any(n.endswith("inference_service/fetch.py") for n in names), "the init container's fetch"
