"""Grow the reference spec: `make_spec(root, n)` writes overlays/ (and the model catalog) with n services.

Each service is a copy of `inference` with its own hosts and a copy of each of `inference`'s connections.
`make_spec(root, n, clusters=k)` also grows the fleet to k clusters: dev and stage on one each, prod on the
rest (`clusters:` region-1 to region-<k-2>, each its own API server; the same namespace and hosts, one name
served in each region). Used by bench/synth_bench.py, bench/check_bench.py and the policy check's
scaling test; it imports nothing heavy.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import yaml

from mlplatform.schema.catalog import CATALOG_FILE

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_spec(root: Path, services: int, clusters: int | None = None) -> None:
    """Copy overlays/ and grow it to `services` services (copies of `inference`) and, where `clusters` is
    more than the environments overlays/ has, to `clusters` clusters (prod's)."""
    (root / "overlays").mkdir(parents=True)
    for folder in (REPO_ROOT / "overlays").iterdir():  # files the overlays name (e.g. identity/*.json)
        if folder.is_dir():
            shutil.copytree(folder, root / "overlays" / folder.name)
    catalog = root / CATALOG_FILE  # the spec checks every model version against it
    catalog.parent.mkdir(parents=True)
    shutil.copy2(REPO_ROOT / CATALOG_FILE, catalog)
    platform = yaml.safe_load((REPO_ROOT / "overlays/platform.yaml").read_text())
    base_service = platform["services"]["inference"]
    platform["services"] = {f"model-{i:03d}": copy.deepcopy(base_service) for i in range(services)}
    # the reference spec's connections, those of `inference` (and its job worker) once per copy
    names = {"inference": "model-{i:03d}", "inference-worker": "model-{i:03d}-worker"}
    copied: list[dict[str, Any]] = []
    for edge in platform["connections"]:
        if edge["from"] not in names and edge["to"] not in names:
            copied.append(edge)
            continue
        for i in range(services):
            renamed = {
                k: names[v].format(i=i) if k in ("from", "to") and v in names else v for k, v in edge.items()
            }
            copied.append(renamed)
    platform["connections"] = copied
    (root / "overlays/platform.yaml").write_text(yaml.safe_dump(platform))
    for path in sorted((REPO_ROOT / "overlays").glob("*.yaml")):
        if path.name == "platform.yaml":
            continue
        overlay: dict[str, Any] = yaml.safe_load(path.read_text())
        base = overlay["services"]["inference"]
        overlay["services"] = {}
        for i in range(services):
            entry = copy.deepcopy(base)
            for key in ("host", "grpcHost"):
                if key in base:
                    entry[key] = f"model-{i:03d}.{base[key]}"
            overlay["services"][f"model-{i:03d}"] = entry
        (root / "overlays" / path.name).write_text(yaml.safe_dump(overlay))
    others = sum(
        1 for p in (root / "overlays").glob("*.yaml") if p.name not in ("platform.yaml", "prod.yaml")
    )
    if clusters is not None and clusters > others + 1:
        prod = root / "overlays" / "prod.yaml"
        overlay = yaml.safe_load(prod.read_text())
        first = overlay.pop("cluster")["server"]
        overlay["clusters"] = {
            f"region-{i}": {"server": first if i == 1 else f"https://prod-region-{i}.k8s.example.com"}
            for i in range(1, clusters - others + 1)
        }
        prod.write_text(yaml.safe_dump(overlay))
