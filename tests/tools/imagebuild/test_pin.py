"""`make image-pin` writes the built digests into an overlay in place, and nothing else."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from imagebuild.errors import BuildError
from imagebuild.pin import pin

ROOT = Path(__file__).resolve().parents[3]
BUILT = {
    "mlplatform-inference": "sha256:" + "1" * 64,
    "mlplatform-models": "sha256:" + "2" * 64,
    "mlplatform-redis": "sha256:" + "3" * 64,
}


def layouts(folder: Path, names: dict[str, str]) -> Path:
    for name, digest in names.items():
        (folder / name).mkdir(parents=True)
        index = {"schemaVersion": 2, "manifests": [{"digest": digest, "size": 1}]}
        (folder / name / "index.json").write_text(json.dumps(index))
    return folder


def test_every_pinned_digest_becomes_the_built_one_and_the_rest_stays(tmp_path: Path) -> None:
    overlay = tmp_path / "stage.yaml"
    shutil.copy(ROOT / "overlays" / "stage.yaml", overlay)
    before = overlay.read_text().splitlines()
    changes = pin(overlay, layouts(tmp_path / "images", BUILT))
    after = overlay.read_text().splitlines()
    spec = yaml.safe_load(overlay.read_text())
    assert spec["redis"]["imageDigest"] == BUILT["mlplatform-redis"]
    assert spec["jobs"]["redis"]["imageDigest"] == BUILT["mlplatform-redis"]
    assert spec["services"]["inference"]["imageDigest"] == BUILT["mlplatform-inference"]
    delivery = spec["services"]["inference"]["modelDelivery"]["image"]
    assert delivery == f"ghcr.io/example/mlplatform-models@{BUILT['mlplatform-models']}"
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(changed) == len(changes) == 4
    for i in changed:  # only the 64 hex digits moved
        assert before[i].split("sha256:")[0] == after[i].split("sha256:")[0]
    assert pin(overlay, tmp_path / "images") == ["stage.yaml: already pins the built digests"]


def test_an_image_that_was_not_built_is_named(tmp_path: Path) -> None:
    overlay = tmp_path / "dev.yaml"
    shutil.copy(ROOT / "overlays" / "dev.yaml", overlay)
    images = layouts(tmp_path / "images", {"mlplatform-inference": BUILT["mlplatform-inference"]})
    with pytest.raises(BuildError, match=r"mlplatform-redis/index.json is missing.*run `make image`"):
        pin(overlay, images)
