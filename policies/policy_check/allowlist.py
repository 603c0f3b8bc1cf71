"""The closed world: what the spec allows in each environment, read from overlays/ and the model catalog.

Everything in dist/ must be something the spec asked for. This module names, per environment, the kinds of
object, the Service types, the image repositories, the volume types and the ports of each workload that the
spec can produce, from the YAML itself (never from the generator's code), and, for every kind it knows, the
one line the spec would have to say to allow it. The rules that enforce it read this list: conftest's
`allowed-kinds` and `ports-resolve` get it as data (`spec.allowlist`); the Kyverno admission policies carry
the lists they need literally, and `admission_drift` holds those literals to the union of this list over the
environments, so neither side can widen on its own.

A new kind of component extends COMPONENTS (its kinds, volumes, ports), and a new switch extends FEATURES:
one place each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from model_build.catalog import CATALOG_PATH
from policy_check import findings

RULE = "admission-allowlist"
#: The model catalog, relative to the repository root (overlays/..).
CATALOG_FILE = Path(CATALOG_PATH)
#: The ports of the runtime contract (README "Runtime contract"): what each component's pods listen on.
INFERENCE_PORTS = ({"name": "http", "port": 8080, "protocol": "TCP"},)
#: A service's API pods also serve the Open Inference Protocol over gRPC (platform.yaml services.<name>.grpc)
SERVICE_PORTS = (*INFERENCE_PORTS, {"name": "grpc", "port": 8081, "protocol": "TCP"})
#: On Knative (runtime: kserve-serverless) the API's one port carries Knative's name for HTTP/1, and no gRPC:
#: Knative accepts a serving port named only http1 or h2c (knative.dev/serving pkg/apis/serving).
KNATIVE_SERVICE_PORTS = ({"name": "http1", "port": 8080, "protocol": "TCP"},)
REDIS_PORTS = ({"name": "redis", "port": 6379, "protocol": "TCP"},)
#: The only Service type the spec produces: services are reached in the cluster, and from outside only
#: through the overlay's route (an Ingress or an HTTPRoute that terminates TLS).
SERVICE_TYPES = ("ClusterIP",)
#: Kyverno policies whose literal lists are this allow-list at admission: policy -> (variable, list key).
ADMISSION_LISTS = {
    "restrict-image-registries": ("allowedRepositories", "repositories"),
    "restrict-service-types": ("allowedTypes", "serviceTypes"),
    "restrict-volume-types": ("allowedVolumeTypes", "volumeTypes"),
}
WORKER_SUFFIX = "-worker"
JOBS_REDIS = "jobs-redis"


@dataclass(frozen=True)
class Component:
    """What one kind of component brings into its environment."""

    kinds: frozenset[str]
    volumes: frozenset[str]
    ports: tuple[dict[str, Any], ...]


#: Every environment: the namespace baseline (restricted Namespace, quota, limits, network policies).
BASELINE = frozenset({"Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy"})
_POD = frozenset({"ServiceAccount", "ConfigMap", "ExternalSecret", "Service", "PodDisruptionBudget"})
_POD_VOLUMES = frozenset({"emptyDir", "configMap", "secret"})
COMPONENTS = {
    # a model service (platform.yaml services.<name>): its Deployment (stable and canary), config, API keys
    "service": Component(_POD | {"Deployment"}, _POD_VOLUMES, SERVICE_PORTS),
    # a service's job worker (overlay jobs.enabled): a Deployment of the same image
    "worker": Component(_POD | {"Deployment"}, _POD_VOLUMES, INFERENCE_PORTS),
    # the Redis cache and the jobs Redis: a StatefulSet with its claim template
    "redis": Component(_POD | {"StatefulSet"}, _POD_VOLUMES, REDIS_PORTS),
}

Overlay = dict[str, Any]
Services = dict[str, Any]


@dataclass(frozen=True)
class Feature:
    """A switch of the spec: when `on(overlay, overlay services)`, the kinds and volumes it adds."""

    says: str  # what overlays/<env>.yaml must say (shown when a kind it adds is refused)
    on: Callable[[Overlay, Services], bool]
    kinds: frozenset[str] = frozenset()
    volumes: frozenset[str] = frozenset()


def _any_service(test: Callable[[dict[str, Any]], bool]) -> Callable[[Overlay, Services], bool]:
    return lambda _overlay, services: any(test(s or {}) for s in services.values())


def _routing(kind: str) -> Callable[[Overlay, Services], bool]:
    def on(overlay: Overlay, _services: Services) -> bool:
        routing = overlay.get("routing") or {}
        return routing.get("kind") == kind and routing.get("madeBy", "platform") == "platform"

    return on


def _engine(engine: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: (
        (s.get("autoscaling") or {}).get("engine", "hpa") == engine if s.get("autoscaling") else False
    )


def _jobs(overlay: Overlay, _services: Services) -> bool:
    return bool((overlay.get("jobs") or {}).get("enabled", False))


FEATURES = (
    Feature("routing.kind: Ingress (made by the platform)", _routing("Ingress"), frozenset({"Ingress"})),
    Feature("routing.kind: Gateway (made by the platform)", _routing("Gateway"), frozenset({"HTTPRoute"})),
    Feature(
        "services.<name>.grpcHost with routing.kind: Gateway (made by the platform)",
        lambda o, s: _routing("Gateway")(o, s) and any((v or {}).get("grpcHost") for v in s.values()),
        frozenset({"GRPCRoute"}),
    ),
    Feature(
        "services.<name>.autoscaling.engine: hpa",
        _any_service(_engine("hpa")),
        frozenset({"HorizontalPodAutoscaler"}),
    ),
    Feature(
        "services.<name>.autoscaling.engine: keda", _any_service(_engine("keda")), frozenset({"ScaledObject"})
    ),
    Feature("jobs.enabled: true", _jobs, frozenset({"ScaledObject", "TriggerAuthentication"})),
    Feature(
        "features.serviceMonitor: true",
        lambda o, _s: bool((o.get("features") or {}).get("serviceMonitor", False)),
        frozenset({"ServiceMonitor"}),
    ),
    Feature(
        "services.<name>.modelDelivery.source: pvc",
        _any_service(lambda s: (s.get("modelDelivery") or {}).get("source") == "pvc"),
        frozenset({"PersistentVolumeClaim"}),
        frozenset({"persistentVolumeClaim"}),
    ),
    Feature(
        "services.<name>.identity",
        _any_service(lambda s: bool(s.get("identity"))),
        volumes=frozenset({"projected"}),
    ),
    Feature("runtime: kserve", lambda o, _s: o.get("runtime") == "kserve", frozenset({"InferenceService"})),
    Feature(
        "runtime: kserve-serverless",
        lambda o, _s: o.get("runtime") == "kserve-serverless",
        frozenset({"InferenceService"}),
    ),
    Feature(
        "mesh: istio",
        lambda o, _s: o.get("mesh") == "istio",
        frozenset({"PeerAuthentication", "AuthorizationPolicy"}),
    ),
)
#: Kinds no field of the spec produces, with why they stay out (shown when one is refused).
NEVER = {
    "Role": "no component calls the Kubernetes API",
    "RoleBinding": "no component calls the Kubernetes API",
    "ClusterRole": "no component calls the Kubernetes API",
    "ClusterRoleBinding": "no component calls the Kubernetes API",
    "Secret": "secrets come from the secret store through ExternalSecrets",
    "Pod": "pods come from the components' controllers",
    "DaemonSet": "no component runs on every node",
}


def _load(path: Path) -> dict[str, Any]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    return raw if isinstance(raw, dict) else {}


def _repository(image: str) -> str:
    """registry/path of an image reference, without its tag or digest."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _catalog(overlays: Path) -> dict[tuple[str, str], dict[str, Any]]:
    path = overlays.parent / CATALOG_FILE
    try:
        models = json.loads(path.read_text(encoding="utf-8")).get("models") or {} if path.is_file() else {}
    except (json.JSONDecodeError, AttributeError):
        return {}  # declared.py reports an unreadable catalog
    return {
        (str(name), str(version)): (entry or {}).get("source") or {}
        for name, versions in models.items()
        for version, entry in (versions or {}).items()
    }


def _models(platform: dict[str, Any], services: Services) -> list[tuple[str, str]]:
    found = []
    for name, service in sorted((platform.get("services") or {}).items()):
        canary = (services.get(name) or {}).get("canary") or {}
        for model in [*((service or {}).get("models") or []), *(canary.get("models") or [])]:
            found.append((str(model.get("name")), str(model.get("version"))))
    return found


def for_environment(
    overlays: Path, env: str, platform: dict[str, Any], overlay: dict[str, Any]
) -> dict[str, Any]:
    """{kinds, serviceTypes, repositories, volumeTypes, ports, hints} for overlays/<env>.yaml."""
    services: Services = overlay.get("services") or {}
    jobs = _jobs(overlay, services)
    kinds = set(BASELINE)
    volumes: set[str] = set()
    ports: dict[str, list[dict[str, Any]]] = {}
    parts: list[tuple[str, Component]] = [("redis", COMPONENTS["redis"])]
    for name in sorted(platform.get("services") or {}):
        parts.append((str(name), COMPONENTS["service"]))
        if jobs:
            parts.append((f"{name}{WORKER_SUFFIX}", COMPONENTS["worker"]))
    if jobs:
        parts.append((JOBS_REDIS, COMPONENTS["redis"]))
    knative = overlay.get("runtime") == "kserve-serverless"
    for name, component in parts:
        kinds |= component.kinds
        volumes |= component.volumes
        own = KNATIVE_SERVICE_PORTS if knative and component is COMPONENTS["service"] else component.ports
        ports[name] = [dict(p) for p in own]
    hints = {kind: f"no field of the spec produces a {kind} ({why})" for kind, why in NEVER.items()}
    for feature in FEATURES:
        if feature.on(overlay, services):
            kinds |= feature.kinds
            volumes |= feature.volumes
        for kind in feature.kinds:
            hints.setdefault(kind, f"to allow it, overlays/{env}.yaml would have to say {feature.says}")
    # images: platform.yaml's repositories, the overlay's model images, and the catalog's OCI sources
    repositories = {str((platform.get("redis") or {}).get("image", ""))}
    repositories |= {str((s or {}).get("image", "")) for s in (platform.get("services") or {}).values()}
    for service in services.values():
        delivery = (service or {}).get("modelDelivery") or {}
        if delivery.get("image"):
            repositories.add(_repository(str(delivery["image"])))
    catalog = _catalog(overlays)
    for model in _models(platform, services):
        source = catalog.get(model, {})
        if source.get("kind") == "oci":
            repositories.add(_repository(str(source.get("reference", ""))))
        elif source.get("kind") == "pvc":
            volumes.add("persistentVolumeClaim")
    for kind in kinds:
        hints.pop(kind, None)
    return {
        "kinds": sorted(kinds),
        "serviceTypes": list(SERVICE_TYPES),
        "repositories": sorted(r for r in repositories if r),
        "volumeTypes": sorted(volumes),
        "ports": ports,
        "hints": dict(sorted(hints.items())),
    }


def _literal_list(policy: dict[str, Any], variable: str) -> list[str] | None:
    """The string list a policy's variable holds literally (`['a', 'b']`), or None."""
    for var in (policy.get("spec") or {}).get("variables") or []:
        if var.get("name") == variable:
            try:
                value = yaml.safe_load(str(var.get("expression", "")))
            except yaml.YAMLError:
                return None
            return [str(v) for v in value] if isinstance(value, list) else None
    return None


def admission_drift(
    policies: Iterable[Path], specs: dict[str, dict[str, Any]], *, complete: bool
) -> list[findings.Finding]:
    """A finding for each Kyverno list that admits what no environment's allow-list names (with `complete`,
    all environments are known) or refuses what one names."""
    found = []
    for path in policies:
        variable, key = ADMISSION_LISTS.get(path.stem, ("", ""))
        if not variable:
            continue
        listed = _literal_list(_load(path), variable)
        where = f"policies/kyverno/{path.stem}/{path.name}"
        if listed is None:
            msg = (
                f"{where}: variables.{variable} is not a literal list of strings. Fix: write it as ['a', 'b']"
            )
            found.append(findings.Finding("cluster-policies", RULE, where, "", "", "", "check", msg))
            continue
        wanted: dict[str, set[str]] = {}
        for env, spec in specs.items():
            for item in ((spec or {}).get("allowlist") or {}).get(key) or []:
                wanted.setdefault(item, set()).add(env)
        for item in sorted(set(wanted) - set(listed)):
            envs = ", ".join(sorted(wanted[item]))
            msg = (
                f"{where}: variables.{variable} lacks {item!r}, which overlays/ allows in {envs}; admission "
                f"would refuse what the spec asks for. Fix: add it to the list"
            )
            found.append(findings.Finding("cluster-policies", RULE, where, "", "", "", "check", msg))
        for item in sorted(set(listed) - set(wanted)) if complete else []:
            msg = (
                f"{where}: variables.{variable} allows {item!r}, which no overlay's allow-list names; the "
                f"clusters would admit what the spec never asks for. Fix: remove it, or name it in overlays/"
            )
            found.append(findings.Finding("cluster-policies", RULE, where, "", "", "", "check", msg))
    return found
