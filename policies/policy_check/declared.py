"""What the spec declares about the network, read straight from overlays/*.yaml (never the generator's code).

The network-isolation rule compares these declared connections with the flows the NetworkPolicies in dist/
allow, so the expectation must not come from the code that wrote those NetworkPolicies: this module parses
the YAML itself and adds only two flows that the spec implies without listing them (cluster DNS, and Redis
replicas replicating from each other when an overlay runs more than one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PLATFORM_FILE = "platform.yaml"
# Every pod resolves names through the cluster DNS (kube-dns / CoreDNS in kube-system, its standard labels).
KUBE_DNS = {
    "namespace": "kube-system",
    "podLabels": {"k8s-app": "kube-dns"},
    "ports": [{"port": 53, "protocol": "UDP", "name": ""}, {"port": 53, "protocol": "TCP", "name": ""}],
}
EVERY_POD = "*"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 20x faster


class SpecError(Exception):
    """overlays/ cannot be read."""


def _load(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506 (a safe loader)
    except FileNotFoundError as err:
        raise SpecError(f"{path}: not found") from err
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping, got {type(raw).__name__}")
    return raw


def environments(overlays: Path) -> list[str]:
    return sorted(p.stem for p in overlays.glob("*.yaml") if p.name != PLATFORM_FILE)


def for_environment(overlays: Path, env: str, platform: dict[str, Any] | None = None) -> dict[str, Any]:
    """{environment, namespace, components, peers, connections} for overlays/<env>.yaml."""
    platform = platform if platform is not None else _load(overlays / PLATFORM_FILE)
    overlay = _load(overlays / f"{env}.yaml")
    where = f"{overlays / (env + '.yaml')}"
    namespace = overlay.get("namespace")
    if not isinstance(namespace, str):
        raise SpecError(f"{where}: namespace: missing (a DNS label)")
    peers: dict[str, Any] = {}
    for name, peer in sorted({**(platform.get("peers") or {}), **(overlay.get("peers") or {})}.items()):
        if not isinstance(peer, dict) or "namespace" not in peer or "podLabels" not in peer:
            raise SpecError(f"{where}: peers.{name}: needs namespace and podLabels")
        peers[name] = {"namespace": peer["namespace"], "podLabels": peer["podLabels"], "ports": []}
    peers["kube-dns"] = KUBE_DNS
    connections = []
    for i, conn in enumerate(platform.get("connections") or []):
        why = f"overlays/{PLATFORM_FILE} connections[{i}]"
        connections.append({"from": str(conn["from"]), "to": str(conn["to"]), "why": why})
    redis_replicas = int((overlay.get("redis") or {}).get("replicas", 1))
    if redis_replicas > 1:
        why = f"overlays/{env}.yaml redis.replicas is {redis_replicas}: replicas replicate from each other"
        connections.append({"from": "redis", "to": "redis", "why": why})
    why = "every pod resolves names through the cluster DNS"
    connections.append({"from": EVERY_POD, "to": "kube-dns", "why": why})
    return {
        "environment": env,
        "namespace": namespace,
        "components": sorted([*(platform.get("services") or {}), "redis"]),
        "peers": peers,
        "connections": connections,
    }


def for_environments(overlays: Path, envs: list[str]) -> dict[str, dict[str, Any]]:
    known = set(environments(overlays))
    platform = _load(overlays / PLATFORM_FILE)
    return {env: for_environment(overlays, env, platform) for env in envs if env in known}
