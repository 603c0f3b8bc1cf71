"""A prod that runs on two clusters: what the multi-cluster tests (constructs, the gate) render and check."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from mlplatform.schema.catalog import CATALOG_FILE
from mlplatform.synth import synthesize

REPO = Path(__file__).resolve().parents[2]

#: The second region: its own API server, region, StorageClass, host and autoscaling bounds.
EU = "eu-west"
EU_SERVER = "https://prod-eu-west.k8s.example.com"
EU_REGION = "eu-west-1"
EU_STORAGE_CLASS = "regional-ssd"
EU_HOST = "eu.inference.mlplatform.example.com"
EU_BOUNDS = (2, 6)
#: The first region keeps prod's one cluster as it is.
US = "us-east"


def two_clusters(overlay: dict[str, Any]) -> None:
    """Turn prod's overlay (as loaded YAML) from `cluster` into `clusters`: us-east is the old cluster
    unchanged, eu-west changes the inference service's host and bounds and the StorageClass."""
    server = overlay.pop("cluster")["server"]
    low, high = EU_BOUNDS
    overlay["clusters"] = {
        EU: {
            "server": EU_SERVER,
            "region": EU_REGION,
            "storageClass": EU_STORAGE_CLASS,
            "services": {"inference": {"host": EU_HOST, "minReplicas": low, "maxReplicas": high}},
        },
        US: {"server": server},
    }


def fleet(root: Path) -> Path:
    """`root` made a repository whose prod runs on two clusters: overlays/ and the model catalog copied, prod
    edited by `two_clusters`, dist/ synthesized from them (policies/ linked: the cluster policies dist/
    ships)."""
    shutil.copytree(REPO / "overlays", root / "overlays")
    (root / Path(CATALOG_FILE).parent).mkdir(parents=True)
    shutil.copy2(REPO / CATALOG_FILE, root / CATALOG_FILE)
    (root / "policies").symlink_to(REPO / "policies")
    prod = root / "overlays" / "prod.yaml"
    data = yaml.safe_load(prod.read_text())
    two_clusters(data)
    prod.write_text(yaml.safe_dump(data, sort_keys=False))
    synthesize(root, out=root / "dist")
    return root
