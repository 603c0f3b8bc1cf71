"""What the spec declares about the network, read straight from overlays/*.yaml (never the generator's code).

The network-isolation rule compares these declared connections with the flows the NetworkPolicies in dist/
allow, so the expectation must not come from the code that wrote those NetworkPolicies: this module parses
the YAML itself and adds only the flows that the spec implies without listing them (cluster DNS, Redis
replicas replicating from each other when an overlay runs more than one, a service's fetch of model
versions whose source in the model catalog is an OCI artifact or an https:// URL: egress to `external`
model-sources on 443, and a service whose overlay sets `identity.jwks.url`: egress to `external`
`<service>-oidc-jwks`, exactly the overlay's `egress.cidrs` on its port, 443).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from policy_check import allowlist, dist

PLATFORM_FILE = "platform.yaml"
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
#: On an Istio mesh, every sidecar connects to the control plane (istiod, its standard labels in
#: istio-system) for configuration and certificates, on 15012.
ISTIOD = {
    "namespace": "istio-system",
    "podLabels": {"app": "istiod"},
    "ports": [{"port": 15012, "protocol": "TCP", "name": ""}],
}
EVERY_POD = "*"
#: Components that exist only where an overlay sets `jobs.enabled: true` (issue 14): the jobs Redis and each
#: service's job worker, `<service>-worker` (the naming rule of overlays/platform.yaml's connections).
JOBS_REDIS = "jobs-redis"
WORKER_SUFFIX = "-worker"
#: `runtime: kserve-serverless`: Knative's activator (requests, while a service is at zero) and autoscaler
#: (each pod's load) reach every service's pods, through the queue-proxy Knative adds to each; their standard
#: labels in knative-serving.
#: Their ServiceAccounts (config/core/deployments/ of knative.dev/serving) are their identities on a mesh.
KNATIVE = {
    "knative-activator": {
        "namespace": "knative-serving",
        "podLabels": {"app": "activator"},
        "ports": [],
        "serviceAccount": "activator",
    },
    "knative-autoscaler": {
        "namespace": "knative-serving",
        "podLabels": {"app": "autoscaler"},
        "ports": [],
        "serviceAccount": "controller",
    },
}
#: The OIDC issuer's JWKS by URL: the overlay names its addresses and port (the one port allowed).
JWKS_PORT = 443
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's C parser when present


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
    path = overlays.parent / allowlist.CATALOG_FILE
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
                why = f"{allowlist.CATALOG_FILE}: {model['name']} {model['version']} comes from {kind} ({at})"
                found.append((str(name), why))
                break
    return found


def _jwks_egress(overlay: dict[str, Any], env: str) -> list[tuple[str, str, dict[str, Any], str]]:
    """(service, external name, {ports, cidrs}, why) for each service whose JWKS comes by URL."""
    found = []
    for name, service in sorted((overlay.get("services") or {}).items()):
        jwks = ((service or {}).get("identity") or {}).get("jwks") or {}
        if "url" not in jwks:
            continue
        egress = jwks.get("egress") or {}
        cidrs = egress.get("cidrs")
        if not isinstance(cidrs, list) or not cidrs:
            raise SpecError(f"overlays/{env}.yaml: services.{name}.identity.jwks.egress.cidrs: missing")
        port = int(egress.get("port", JWKS_PORT))
        entry = {"ports": [{"port": port, "protocol": "TCP", "name": ""}], "cidrs": sorted(map(str, cidrs))}
        why = f"overlays/{env}.yaml services.{name}.identity.jwks.url: the OIDC issuer's JWKS"
        found.append((str(name), f"{name}-oidc-jwks", entry, why))
    return found


def repo_url(overlays: Path) -> str:
    """platform.yaml's argocd.repoUrl: where Argo CD reads this repository ("" where it names none)."""
    return str((_load(overlays / PLATFORM_FILE).get("argocd") or {}).get("repoUrl") or "")


def environments(overlays: Path) -> list[str]:
    """The dist/ folder of each environment overlays/ declares: <env>, or <env>/<cluster> for each cluster
    of an overlay with `clusters`."""
    found = []
    for path in sorted(p for p in overlays.glob("*.yaml") if p.name != PLATFORM_FILE):
        clusters = _load(path).get("clusters")
        if isinstance(clusters, dict) and clusters:
            found += sorted(f"{path.stem}/{c}" for c in clusters)
        else:
            found.append(path.stem)
    return found


def for_environment(overlays: Path, folder: str, platform: dict[str, Any] | None = None) -> dict[str, Any]:
    """{environment, namespace, components, peers, connections} for overlays/<env>.yaml, where `folder` is
    <env>, or <env>/<cluster> (what a cluster changes, hosts, replicas and storage classes, declares no
    component, peer or connection: every cluster of an environment gets the same)."""
    env = dist.environment_of(folder)
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
        if peer.get("serviceAccount"):  # its identity on a mesh
            peers[name]["serviceAccount"] = str(peer["serviceAccount"])
    peers["kube-dns"] = KUBE_DNS
    jobs_on = bool((overlay.get("jobs") or {}).get("enabled", False))
    services = [str(s) for s in platform.get("services") or {}]
    jobs_components = {JOBS_REDIS, *(f"{s}{WORKER_SUFFIX}" for s in services)}
    connections = []
    for i, conn in enumerate(platform.get("connections") or []):
        if not jobs_on and {str(conn["from"]), str(conn["to"])} & jobs_components:
            continue  # no jobs Redis and no workers in this environment
        why = f"overlays/{PLATFORM_FILE} connections[{i}]"
        grpc = bool(conn.get("grpc", False))  # the target's gRPC port too, not only its HTTP port
        connections.append({"from": str(conn["from"]), "to": str(conn["to"]), "grpc": grpc, "why": why})
    redis_replicas = int((overlay.get("redis") or {}).get("replicas", 1))
    if redis_replicas > 1:
        why = f"overlays/{env}.yaml redis.replicas is {redis_replicas}: replicas replicate from each other"
        connections.append({"from": "redis", "to": "redis", "why": why})
    why = "every pod resolves names through the cluster DNS"
    connections.append({"from": EVERY_POD, "to": "kube-dns", "why": why})
    mesh = str(overlay.get("mesh", "none"))
    if mesh == "istio":
        peers["istiod"] = ISTIOD
        why = f"overlays/{env}.yaml mesh is istio: sidecars get configuration and certificates from istiod"
        connections.append({"from": EVERY_POD, "to": "istiod", "why": why})
    if str(overlay.get("runtime", "deployment")) == "kserve-serverless":
        for name, peer in KNATIVE.items():
            peers[name] = peer
            why = f"overlays/{env}.yaml runtime is kserve-serverless: Knative's {name} reaches its pods"
            port = {"port": "queue-proxy-metrics"} if name == "knative-autoscaler" else {}  # its load, only
            for service in services:
                connections.append({"from": name, "to": service, "why": why, **port})
    for service, why in _fetching_services(overlays, platform, overlay, env):
        connections.append({"from": service, "to": MODEL_SOURCES, "why": why})
        if jobs_on:  # the service's job worker loads the same models
            connections.append({"from": f"{service}{WORKER_SUFFIX}", "to": MODEL_SOURCES, "why": why})
    external = dict(EXTERNAL)
    for service, target, entry, why in _jwks_egress(overlay, env):
        external[target] = entry
        connections.append({"from": service, "to": target, "why": why})
    return {
        "environment": env,
        "namespace": namespace,
        "components": sorted([*services, "redis", *(sorted(jobs_components) if jobs_on else [])]),
        "peers": peers,
        "external": external,
        "connections": connections,
        "mesh": mesh,
        # what may exist at all: kinds, Service types, repositories, volumes, ports (policy_check.allowlist)
        "allowlist": allowlist.for_environment(overlays, env, platform, overlay),
    }


def for_environments(overlays: Path, folders: list[str]) -> dict[str, dict[str, Any]]:
    known = set(environments(overlays))
    platform = _load(overlays / PLATFORM_FILE)
    return {folder: for_environment(overlays, folder, platform) for folder in folders if folder in known}
