"""Model versions from an OCI artifact, an https:// URL or a PVC: the catalog says so, the pod fetches them
in its `model-source` init container (digests passed along) and mounts each version read-only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.schema import SpecError, load_environment
from mlplatform.schema.catalog import CATALOG_FILE
from mlplatform.synth import render

HTTPS = {"kind": "https", "url": "https://models.example.com/bc-3.tar", "sha256": "cd" * 32}
PVC = {"kind": "pvc", "claim": "model-archive", "path": "/minilm-2.tar", "sha256": "34" * 32}


def _register(root: Path, name: str, version: str, source: dict[str, Any]) -> None:
    path = root / CATALOG_FILE
    catalog = json.loads(path.read_text())
    catalog["models"][name][version] = {"sha256": "ab" * 32, "source": source}
    path.write_text(json.dumps(catalog))


@pytest.fixture
def fetched_prod(spec_copy: Path, edit_yaml: Any) -> list[dict[str, Any]]:
    _register(spec_copy, "breast-cancer", "3", HTTPS)
    _register(spec_copy, "minilm-embedding", "2", PVC)

    def canary(d: dict[str, Any]) -> None:
        d["services"]["inference"]["canary"]["models"] = [
            {"name": "breast-cancer", "version": "3"},
            {"name": "minilm-embedding", "version": "2"},
        ]

    edit_yaml(spec_copy / "overlays" / "prod.yaml", canary)
    files = render(spec_copy, only=["prod"]).folders["prod"]
    diagram = files["ARCHITECTURE.md"]
    assert isinstance(diagram, str)
    assert "inference -->|tcp 443| model_sources" in diagram  # the egress is drawn, as every allowed flow is
    return [yaml.safe_load(t) for n, t in files.items() if n.endswith(".yaml")]


def test_the_canary_fetches_its_remote_versions_and_the_stable_track_does_not(
    fetched_prod: list[dict[str, Any]], find_object: Any
) -> None:
    canary = find_object(fetched_prod, "Deployment", "inference-canary")["spec"]["template"]["spec"]
    (init,) = canary["initContainers"]
    assert init["name"] == "model-source"
    assert init["image"] == canary["containers"][0]["image"]
    assert init["command"][:5] == ["python", "-m", "inference_service.fetch", "--dest", "/models-fetched"]
    entries = [json.loads(arg) for arg in init["command"][5:]]
    assert [(e["name"], e["version"], e["source"]) for e in entries] == [
        ("breast-cancer", "3", HTTPS),
        ("minilm-embedding", "2", PVC),
    ]
    assert all(e["sha256"] == "ab" * 32 for e in entries)
    mounts = {m["mountPath"]: m for m in canary["containers"][0]["volumeMounts"]}
    for path in ("/models/breast-cancer/3", "/models/minilm-embedding/2"):
        assert mounts[path]["readOnly"] is True and mounts[path]["subPath"] == path.removeprefix("/models/")
    claims = {v["name"]: v for v in canary["volumes"] if "persistentVolumeClaim" in v}
    assert claims["source-model-archive"]["persistentVolumeClaim"] == {
        "claimName": "model-archive",
        "readOnly": True,
    }
    stable = find_object(fetched_prod, "Deployment", "inference")["spec"]["template"]["spec"]
    assert "initContainers" not in stable


def test_a_remote_source_without_a_digest_is_one_clear_line(spec_copy: Path) -> None:
    _register(spec_copy, "breast-cancer", "3", {"kind": "https", "url": "https://models.example.com/m.tar"})
    with pytest.raises(SpecError) as err:
        load_environment("prod", repo_root=spec_copy)
    (line,) = err.value.lines
    assert line.startswith(f"{CATALOG_FILE}:") and "sha256" in line and "missing" in line.lower(), line


def test_with_a_model_cache_the_versions_are_fetched_into_the_cache(
    spec_copy: Path, edit_yaml: Any, find_object: Any
) -> None:
    _register(spec_copy, "breast-cancer", "3", HTTPS)

    def models(d: dict[str, Any]) -> None:
        d["services"]["inference"]["models"] = [{"name": "breast-cancer", "version": "3"}]

    edit_yaml(spec_copy / "overlays" / "platform.yaml", models)
    files = render(spec_copy, only=["stage"]).folders["stage"]
    objs = [yaml.safe_load(t) for n, t in files.items() if n.endswith(".yaml")]
    pod = find_object(objs, "Deployment", "inference")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["model-fetch", "model-source"]
    assert pod["initContainers"][1]["volumeMounts"] == [{"mountPath": "/models-fetched", "name": "models"}]
    assert not [v for v in pod["volumes"] if v["name"] == "model-source"]
    assert not [m for m in pod["containers"][0]["volumeMounts"] if "subPath" in m]
