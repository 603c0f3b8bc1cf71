"""Each image `make image` built has its SBOM beside it (build/images/<name>.spdx.json, syft's SPDX JSON):
it lists exactly the Debian packages of the image's base lock and the Python distributions of the wheel lock
(the committed locks, not what the build code says), and syft run again gives the same bytes.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from imagebuild import publish, sbom

ROOT = Path(__file__).resolve().parents[3]
IMAGES = ROOT / "build" / "images"
LOCKS = ROOT / "images"
#: What each image is made of, by lock file: its Debian base, and the virtualenv where it has one.
MADE_OF = {
    "mlplatform-inference": ("debian-python.lock", True),
    "mlplatform-models": ("debian-python.lock", False),
    "mlplatform-redis": ("debian-redis.lock", False),
}


def _sbom(name: str) -> dict[str, Any]:
    path = IMAGES / f"{name}.spdx.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make image`", pytrace=False)
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _purls(doc: dict[str, Any], kind: str) -> set[tuple[str, str]]:
    """(name, version) of every package whose purl is of `kind` (deb, pypi)."""
    found = set()
    for package in doc["packages"]:
        for ref in package.get("externalRefs") or []:
            if ref["referenceType"] == "purl" and ref["referenceLocator"].startswith(f"pkg:{kind}/"):
                found.add(
                    (
                        _canonical(package["name"]) if kind == "pypi" else package["name"],
                        package["versionInfo"],
                    )
                )
    return found


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _debian_lock(file: str) -> set[tuple[str, str]]:
    lines = (LOCKS / file).read_text().splitlines()
    return {(p[0], p[1]) for p in (line.split() for line in lines if line and not line.startswith("#"))}


def _wheel_lock() -> set[tuple[str, str]]:
    found = set()
    for line in (LOCKS / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split()[0].split("==")
            found.add((_canonical(name), version))
    return found


@pytest.mark.parametrize("name", sorted(MADE_OF))
def test_the_sbom_lists_the_debian_packages_and_python_distributions_of_the_locks(name: str) -> None:
    doc = _sbom(name)
    lock, has_venv = MADE_OF[name]
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["name"] == name
    assert _purls(doc, "deb") == _debian_lock(lock)
    assert _purls(doc, "pypi") == (_wheel_lock() if has_venv else set())


def test_a_second_sbom_of_the_same_image_is_the_same_bytes(tmp_path: Path) -> None:
    """From a copy of the layout at another path: nothing of the run (time, random IDs, paths) gets in."""
    name = "mlplatform-redis"
    digest = publish.layouts(IMAGES)[name]
    shutil.copytree(IMAGES / name, tmp_path / name)
    sbom.write(tmp_path / name, name, digest, tmp_path)
    assert sbom.path_of(tmp_path, name).read_bytes() == (IMAGES / f"{name}.spdx.json").read_bytes()
