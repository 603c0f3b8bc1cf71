"""What the spec declares about the network, read straight from overlays/*.yaml (never the generator's code).

The network-isolation rule compares these declared connections with the flows the NetworkPolicies in dist/
allow, so the expectation must not come from the code that wrote those NetworkPolicies: this module parses
the YAML itself and adds only the flows that the spec implies without listing them (cluster DNS, Redis
replicas replicating from each other when an overlay runs more than one, and a service's fetch of model
versions whose source in the model catalog is an OCI artifact or an https:// URL: egress to `external`
model-sources on 443).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

PLATFORM_FILE = "platform.yaml"
#: The model catalog, relative to the repository root (overlays/..): where each model version comes from.
CATALOG_FILE = Path("apps/inference/model_build/catalog.json")
#: Catalog source kinds fetched over the network, and the one port the fetch uses.
NETWORK_SOURCES = ("https", "oci")
MODEL_SOURCES = "model-sources"
EXTERNAL = {MODEL_SOURCES: {"ports": [{"port": 443, "protocol": "TCP", "name": ""}]}}
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


def _catalog_sources(overlays: Path) -> dict[tuple[str, str], str]:
    """(model, version) -> source kind, read from the catalog's JSON (absent catalog: nothing is fetched)."""
    path = overlays.parent / CATALOG_FILE
    if not path.is_file():
        return {}
    try:
        models = json.loads(path.read_text(encoding="utf-8")).get("models") or {}
    except (json.JSONDecodeError, AttributeError) as err:
        raise SpecError(f"{path}: not a model catalog: {err}") from err
    return {
        (str(name), str(version)): str((entry.get("source") or {}).get("kind", ""))
        for name, versions in models.items()
        for version, entry in versions.items()
    }


def _fetching_services(
    overlays: Path, platform: dict[str, Any], overlay: dict[str, Any], env: str
) -> list[tuple[str, str]]:
    """(service, why) for each service with a model version from an OCI registry or an https:// URL."""
    kinds = _catalog_sources(overlays)
    found = []
    for name, service in sorted((platform.get("services") or {}).items()):
        canary = ((overlay.get("services") or {}).get(name) or {}).get("canary") or {}
        for model in [*(service.get("models") or []), *(canary.get("models") or [])]:
            kind = kinds.get((str(model.get("name")), str(model.get("version"))), "")
            if kind in NETWORK_SOURCES:
                at = f"overlays/{env}.yaml"
                why = f"{CATALOG_FILE}: {model['name']} {model['version']} comes from {kind} ({at})"
                found.append((str(name), why))
                break
    return found


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
    for service, why in _fetching_services(overlays, platform, overlay, env):
        connections.append({"from": service, "to": MODEL_SOURCES, "why": why})
    return {
        "environment": env,
        "namespace": namespace,
        "components": sorted([*(platform.get("services") or {}), "redis"]),
        "peers": peers,
        "external": EXTERNAL,
        "connections": connections,
    }


def for_environments(overlays: Path, envs: list[str]) -> dict[str, dict[str, Any]]:
    known = set(environments(overlays))
    platform = _load(overlays / PLATFORM_FILE)
    return {env: for_environment(overlays, env, platform) for env in envs if env in known}
