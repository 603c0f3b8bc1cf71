"""Shared fixtures: the reference platform is rendered once per test session (one jsii start)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from mlplatform.spec import Environment, load_environment
from mlplatform.spec.catalog import CATALOG_FILE
from mlplatform.synth import Rendered, render

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def rendered() -> Rendered:
    return render(REPO_ROOT)


@pytest.fixture(scope="session")
def objects(rendered: Rendered) -> dict[str, list[dict[str, Any]]]:
    """folder -> parsed objects, for every YAML file under dist/ as freshly rendered."""
    out: dict[str, list[dict[str, Any]]] = {}
    for folder, files in rendered.folders.items():
        out[folder] = [yaml.safe_load(content) for name, content in files.items() if name.endswith(".yaml")]
    return out


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


@pytest.fixture
def spec_copy(tmp_path: Path) -> Path:
    """A writable copy of overlays/ and the model catalog in a temporary repository root."""
    shutil.copytree(REPO_ROOT / "overlays", tmp_path / "overlays")
    catalog = Path(CATALOG_FILE)
    (tmp_path / catalog.parent).mkdir(parents=True)
    shutil.copy2(REPO_ROOT / catalog, tmp_path / catalog)
    return tmp_path


def _edit_yaml(path: Path, change: Any) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="session")
def edit_yaml() -> Any:
    """edit_yaml(path, change): load a YAML file, let `change` mutate it, write it back."""
    return _edit_yaml


@pytest.fixture(scope="session")
def find_object() -> Any:
    """find_object(objects, kind, name): the one object of that kind and name."""
    return find


def env_of(root: Path, name: str) -> Environment:
    return load_environment(name, repo_root=root)
