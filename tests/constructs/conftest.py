"""Shared fixtures: the reference platform is rendered once per test session (one jsii start)."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from mlplatform.helm import HELM_DIR
from mlplatform.schema import Environment, load_environment
from mlplatform.schema.catalog import CATALOG_FILE
from mlplatform.synth import Rendered, render
from tests.support import manifests

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def is_chart(folder: str) -> bool:
    """dist/helm/<platform>/ and its templates/: the environments as a Helm chart."""
    return folder.split("/", 1)[0] == HELM_DIR


@pytest.fixture(scope="session")
def rendered() -> Rendered:
    return render(REPO_ROOT)


@pytest.fixture(scope="session")
def objects(rendered: Rendered) -> dict[str, list[dict[str, Any]]]:
    """folder -> parsed objects, for every YAML file under dist/ as freshly rendered (but the Helm chart's:
    templates and values, not objects; tests/tools/helmchart/ renders them)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for folder, files in rendered.folders.items():
        if is_chart(folder):
            continue
        out[folder] = [yaml.safe_load(content) for name, content in files.items() if name.endswith(".yaml")]
    return out


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
    return manifests.one


def env_of(root: Path, name: str) -> Environment:
    return load_environment(name, repo_root=root)


def _add_service(root: Path, name: str = "fraud") -> None:
    """A second model service as the README describes it: an entry under `services:` and its connections in
    platform.yaml (the same as `inference`'s, with its own name), and in each overlay its own host, the same
    digest and resources, and room in the quota for it."""
    platform = root / "overlays" / "platform.yaml"
    data = yaml.safe_load(platform.read_text())
    data["services"][name] = {
        **data["services"]["inference"],
        "apiKeys": {"remoteKey": f"x/{name}", "property": "k"},
    }
    rename = {"inference": name, "inference-worker": f"{name}-worker"}
    data["connections"] += [
        {**c, "from": rename.get(c["from"], c["from"]), "to": rename.get(c["to"], c["to"])}
        for c in data["connections"]
        if "inference" in (c["from"], c["to"]) or "inference-worker" in (c["from"], c["to"])
    ]
    platform.write_text(yaml.safe_dump(data, sort_keys=False))
    for overlay in sorted((root / "overlays").glob("*.yaml")):
        if overlay.name == "platform.yaml":
            continue
        data = yaml.safe_load(overlay.read_text())
        svc = copy.deepcopy(data["services"]["inference"])
        for host in ("host", "grpcHost"):
            if host in svc:
                svc[host] = f"{name}.{svc[host]}"
        svc.pop("canary", None)
        data["services"][name] = svc
        for key, value in list(data["quota"].items()):
            data["quota"][key] = value * 4 if isinstance(value, int) else str(value).replace("Gi", "0Gi")
            if key.endswith("Cpu"):
                data["quota"][key] = str(int(value) * 4)
        overlay.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def add_service() -> Any:
    """add_service(root, name="fraud"): a second service in the spec copy at `root`, with its connections."""
    return _add_service
