"""Grow the reference spec: `make_spec(root, n)` writes overlays/ (and the model catalog) with n services.

Each service is a copy of `inference` with its own host and the connections the spec requires of it. Used by
bench/synth_bench.py, bench/check_bench.py and the policy check's scaling test; it imports nothing heavy.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import yaml

from mlplatform.spec.catalog import CATALOG_FILE

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_spec(root: Path, services: int) -> None:
    """Copy overlays/ and grow it to `services` services (copies of `inference`)."""
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
    platform["connections"] = [
        edge
        for i in range(services)
        for edge in (
            {"from": "ingress-controller", "to": f"model-{i:03d}"},
            {"from": "metrics-scraper", "to": f"model-{i:03d}"},
            {"from": f"model-{i:03d}", "to": "redis"},
            # stage runs jobs: the API, its worker and the caches (what the spec requires there)
            {"from": f"model-{i:03d}", "to": "jobs-redis"},
            {"from": f"model-{i:03d}-worker", "to": "jobs-redis"},
            {"from": f"model-{i:03d}-worker", "to": "redis"},
            {"from": "metrics-scraper", "to": f"model-{i:03d}-worker"},
        )
    ] + [{"from": "keda-operator", "to": "jobs-redis"}]
    (root / "overlays/platform.yaml").write_text(yaml.safe_dump(platform))
    for path in sorted((REPO_ROOT / "overlays").glob("*.yaml")):
        if path.name == "platform.yaml":
            continue
        overlay: dict[str, Any] = yaml.safe_load(path.read_text())
        base = overlay["services"]["inference"]
        overlay["services"] = {}
        for i in range(services):
            entry = copy.deepcopy(base)
            entry["host"] = f"model-{i:03d}.{base['host']}"
            overlay["services"][f"model-{i:03d}"] = entry
        (root / "overlays" / path.name).write_text(yaml.safe_dump(overlay))
