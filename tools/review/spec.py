"""What the review reads from the spec: the peers' names (to name the ends of flows), nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from policy_check.dist import environment_of

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


#: Not a peer of the spec, but what every pod's DNS NetworkPolicy selects (the cluster's CoreDNS).
KUBE_DNS = {"namespace": "kube-system", "podLabels": {"k8s-app": "kube-dns"}}


def _peers_in(path: Path) -> dict[str, dict[str, Any]]:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506 (a safe loader)
    except (OSError, yaml.YAMLError):
        return {}  # the synth and the gate report a broken file; the review names peers where it can
    found = (doc.get("peers") if isinstance(doc, dict) else None) or {}
    return {str(k): v for k, v in found.items() if isinstance(v, dict)}


def peers(overlays: Path, env: str) -> dict[str, dict[str, Any]]:
    """The peers environment `env` (or one of its clusters, `<env>/<cluster>`) knows: platform.yaml's, then
    its overlay's over them."""
    return {
        "kube-dns": KUBE_DNS,
        **_peers_in(overlays / "platform.yaml"),
        **_peers_in(overlays / f"{environment_of(env)}.yaml"),
    }
