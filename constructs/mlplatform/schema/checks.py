"""Checks across fields of different files: an overlay against platform.yaml, the catalog, the other overlays.

Each returns problems located at the field they are about (`file:line: field.path: ...`), never raises.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mlplatform.names import JOBS_REDIS, WORKER_SUFFIX
from mlplatform.schema.catalog import CATALOG_FILE, Catalog
from mlplatform.schema.common import DNS_LABEL_PATTERN
from mlplatform.schema.errors import FieldPath, Problem, choices, did_you_mean
from mlplatform.schema.overlay import KSERVE_RUNTIMES, GatewayRouting, Overlay, ServiceOverlay
from mlplatform.schema.platform import Model, Platform
from mlplatform.schema.source import Source

PLATFORM_FILE = "platform.yaml"
#: Folders under dist/ and Argo CD Application names that are not environments (`<platform>-<name>`).
RESERVED_ENVIRONMENTS = ("argocd", "cluster-policies", "infrastructure", "root")
RESERVED_ENVIRONMENT_PREFIXES = ("cluster-policies-", "infrastructure-", "addon-")
#: Namespaces an environment may not take: the cluster's own, and where Argo CD's cluster policies go (the
#: environment baseline - default-deny, restricted Pod Security, quota - would break what runs there).
#: The add-ons' namespaces (mlplatform.infrastructure) are the operators' own.
SYSTEM_NAMESPACES = (
    "cert-manager",
    "default",
    "envoy-gateway-system",
    "external-secrets",
    "keda",
    "kube-node-lease",
    "kube-public",
    "kube-system",
    "kyverno",
)
#: Longest object name that is also a label value (the Application name is Argo CD's instance label).
MAX_LABEL = 63


@dataclass(frozen=True)
class Loaded:
    """One overlay file as read and, where it was valid, validated."""

    env: str
    source: Source
    overlay: Overlay | None


def environment_name(env: str, file: str, platform: Platform | None) -> list[Problem]:
    """The file name is the environment's name: a DNS-1123 label, not reserved, short enough for its App."""
    problems = []
    if not re.match(DNS_LABEL_PATTERN, env):
        problems.append(
            f"environment name {env!r} (the file name) is not a DNS-1123 label; allowed: "
            "lowercase letters, digits and '-', starting with a letter, e.g. qa-env.yaml"
        )
    if env in RESERVED_ENVIRONMENTS or env.startswith(RESERVED_ENVIRONMENT_PREFIXES):
        problems.append(
            f"environment name {env!r} is reserved; allowed: any name but argocd, root, "
            "cluster-policies[-*], infrastructure[-*], addon-*"
        )
    if platform is not None and len(f"{platform.name}-{env}") > MAX_LABEL:
        problems.append(
            f"environment name is too long for its Application ({platform.name}-<env>, over {MAX_LABEL}); "
            f"allowed: at most {MAX_LABEL - len(platform.name) - 1} characters"
        )
    return [Problem(file, 1, "", message) for message in problems]


def cluster_names(env: str, overlay: Overlay, source: Source, platform: Platform | None) -> list[Problem]:
    """Each cluster's name is short enough for its Application (<platform>-<env>-<cluster>)."""
    if platform is None:
        return []
    room = MAX_LABEL - len(f"{platform.name}-{env}-")
    return [
        source.problem(
            ("clusters", cluster),
            f"cluster name {cluster!r} is too long for its Application ({platform.name}-{env}-<cluster>, "
            f"over {MAX_LABEL}); allowed: at most {room} characters",
        )
        for cluster in sorted(overlay.clusters or {})
        if len(cluster) > room
    ]


def jobs_flows(platform: Platform) -> list[tuple[str, str, str]]:
    """(from, to, why) for each flow the settings of an environment with jobs imply: each service's API
    queues jobs and counts quotas in the jobs Redis (INFERENCE_JOBS_REDIS_URL), its worker takes jobs from
    it, and a worker of a service with useCache uses the cache (INFERENCE_REDIS_URL) as the service does."""
    flows = []
    for name, svc in sorted(platform.services.items()):
        worker = f"{name}{WORKER_SUFFIX}"
        flows.append((name, JOBS_REDIS, "jobs and quotas"))
        flows.append((worker, JOBS_REDIS, "its jobs"))
        if svc.use_cache:
            flows.append((worker, "redis", "useCache"))
    return flows


def _jobs_connections(platform: Platform, source: Source) -> list[Problem]:
    """jobs.enabled renders settings that reach the jobs Redis and the cache: each needs its connection,
    or the NetworkPolicies (default deny) would leave the setting without a path."""
    declared = {(c.source, c.target) for c in platform.connections}
    return [
        source.problem(
            ("jobs", "enabled"),
            f"true, but {PLATFORM_FILE} has no connection {src} -> {dst} ({why}); "
            f"allowed: add `- {{from: {src}, to: {dst}}}`, or enabled: false",
        )
        for src, dst, why in jobs_flows(platform)
        if (src, dst) not in declared
    ]


def overlay_against_platform(platform: Platform, overlay: Overlay, source: Source) -> list[Problem]:
    problems: list[Problem] = []
    declared = sorted(platform.services)
    for name in sorted(set(overlay.services) - set(platform.services)):
        problems.append(
            source.problem(
                ("services", name),
                f"not a service of {PLATFORM_FILE}{did_you_mean(name, declared)}; "
                f"allowed: {choices(declared)}",
            )
        )
    for name in sorted(set(platform.services) - set(overlay.services)):
        problems.append(
            source.problem(("services",), f"{name}: missing; every service of {PLATFORM_FILE} needs an entry")
        )
    problems += _kserve_routes(overlay, source)
    problems += _serverless(overlay, source)
    problems += _grpc_routes(platform, overlay, source)
    for name, svc in sorted(overlay.services.items()):
        if svc.canary is not None and not isinstance(overlay.routing, GatewayRouting):
            problems.append(
                source.problem(
                    ("services", name, "canary"),
                    f"weighted canary traffic needs routing.kind 'Gateway'; got {overlay.routing.kind!r}",
                )
            )
        problems += _load_signal(overlay, name, svc, source)
        if svc.gpu is not None and overlay.quota.requests_gpu < svc.gpu.count:
            problems.append(
                source.problem(
                    ("services", name, "gpu", "count"),
                    f"{svc.gpu.count} exceeds quota.requestsGpu ({overlay.quota.requests_gpu}); "
                    "allowed: at most the quota",
                )
            )
    for name, svc in sorted(overlay.services.items()):
        stable = (
            {(m.name, m.version) for m in platform.services[name].models}
            if name in platform.services
            else set()
        )
        extra = sorted({(m.name, m.version) for m in svc.canary.models} - stable) if svc.canary else []
        if overlay.jobs.enabled and extra:
            model, version = extra[0]
            problems.append(
                source.problem(
                    ("services", name, "canary", "models"),
                    f"{model} {version} is not a stable model, but jobs.enabled is true and the job worker "
                    "runs the stable models only; allowed: canary models among the stable ones, or no jobs",
                )
            )
    if overlay.features.service_monitor:
        for name in sorted(n for n, s in platform.services.items() if s.metrics_token is None):
            problems.append(
                source.problem(
                    ("features", "serviceMonitor"),
                    f"true, but service {name!r} of {PLATFORM_FILE} has no metricsToken for the scraper "
                    "(/metrics names the models, so it is never anonymous); allowed: add "
                    f"services.{name}.metricsToken to {PLATFORM_FILE}, or serviceMonitor: false",
                )
            )
    if overlay.jobs.enabled and platform.jobs is None:
        problems.append(
            source.problem(
                ("jobs", "enabled"),
                f"true, but {PLATFORM_FILE} has no jobs.password for the jobs Redis; "
                f"allowed: add jobs.password to {PLATFORM_FILE}, or enabled: false",
            )
        )
    if overlay.jobs.enabled:
        problems += _jobs_connections(platform, source)
    for name in sorted(set(overlay.peers) - set(platform.peers)):
        problems.append(
            source.problem(
                ("peers", name),
                f"not a peer of {PLATFORM_FILE}{did_you_mean(name, platform.peers)}; "
                f"allowed: {choices(platform.peers)}",
            )
        )
    problems += _mesh_identities(platform, overlay, source)
    routes = [(s.host, s.path, n) for n, s in sorted(overlay.services.items())]
    for host, path, name in routes:
        others = [n for h, p, n in routes if (h, p) == (host, path) and n != name]
        if others and name > others[0]:
            problems.append(
                source.problem(
                    ("services", name, "host"),
                    f"{host!r} path {path!r} is already routed to {others[0]!r}; allowed: one service each",
                )
            )
    return problems + _namespace(platform, overlay, source)


def _load_signal(overlay: Overlay, name: str, svc: ServiceOverlay, source: Source) -> list[Problem]:
    """A load signal reads the service's metrics from Prometheus: something must scrape them, and the
    ScaledObject must be ours (with `runtime: kserve` the controller makes the autoscaler, on CPU)."""
    scaling = svc.autoscaling
    if scaling is None or scaling.signal == "cpu" or scaling.engine == "knative":
        return []  # Knative's queue-proxy measures the load itself (_serverless)
    where = ("services", name, "autoscaling", "signal")
    if overlay.runtime != "deployment":
        why = (
            f"{scaling.signal!r} with runtime {overlay.runtime!r}: KServe's controller makes its own CPU "
            "autoscaler; allowed: signal cpu, or runtime deployment"
        )
        return [source.problem(where, why)]
    if not overlay.features.service_monitor:
        why = (
            f"{scaling.signal!r} needs the service scraped, but features.serviceMonitor is false; "
            "allowed: features.serviceMonitor: true, or signal cpu"
        )
        return [source.problem(where, why)]
    return []


def _grpc_routes(platform: Platform, overlay: Overlay, source: Source) -> list[Problem]:
    """`grpcHost` (read with runtime `deployment` only) needs the service's `grpc` on, a host other than
    `host`, and the route's source (a peer: the ingress controller) connected with `grpc: true` (else its
    NetworkPolicy would refuse the traffic)."""
    problems = []
    for name, svc in sorted(overlay.services.items()):
        spec = platform.services.get(name)
        if svc.grpc_host is None or spec is None or overlay.runtime != "deployment":
            continue  # KServe's runtime serves HTTP only: no gRPC port, no route (README "gRPC")
        where, why = ("services", name, "grpcHost"), ""
        if not spec.grpc:
            why = f"{PLATFORM_FILE} services.{name}.grpc is false; allowed: no grpcHost, or grpc: true"
        elif svc.grpc_host == svc.host:
            why = f"{svc.grpc_host!r} is `host` too; allowed: a host of its own (one route kind per hostname)"
        elif not any(
            c.target == name and c.grpc and c.source in platform.peers for c in platform.connections
        ):
            why = (
                f"no peer's connection to {name!r} says grpc: true (a route could not reach the port); "
                "allowed: add `grpc: true` to the ingress controller's"
            )
        if why:
            problems.append(source.problem(where, why))
    return problems


def _serverless(overlay: Overlay, source: Source) -> list[Problem]:
    """`runtime: kserve-serverless` and Knative's autoscaler go together, and Knative makes the route.

    Knative's ingress routes to the revisions and its activator holds requests while a service is at zero, so
    the route is KServe's (`routing.madeBy: kserve` on a Gateway); our Ingress or HTTPRoute could only point
    at the per-revision Services Knative makes. The canary is KServe's `canaryTrafficPercent` over the two
    latest revisions, which Knative scales by themselves (no `canary.replicas`).
    """
    serverless = overlay.runtime == "kserve-serverless"
    problems = []
    for name, svc in sorted(overlay.services.items()):
        engine = svc.autoscaling.engine if svc.autoscaling is not None else None
        where = ("services", name, "autoscaling", "engine")
        if engine == "knative" and not serverless:
            why = f"knative with runtime {overlay.runtime!r}; allowed: hpa or keda (knative: serverless)"
            problems.append(source.problem(where, why))
        if serverless and engine not in (None, "knative"):
            why = (
                f"{engine!r} with runtime kserve-serverless (Knative scales the revisions); allowed: knative"
            )
            problems.append(source.problem(where, why))
        if serverless and svc.canary is not None and "replicas" in svc.canary.model_fields_set:
            why = "set, but Knative scales each revision (runtime kserve-serverless); allowed: leave it out"
            problems.append(source.problem(("services", name, "canary", "replicas"), why))
    if not serverless:
        return problems
    routing = overlay.routing
    if not isinstance(routing, GatewayRouting) or routing.made_by != "kserve":
        why = (
            "runtime kserve-serverless: Knative's ingress routes to its revisions (no route of ours); "
            "allowed: routing kind Gateway with madeBy kserve"
        )
        problems.append(source.problem(("routing",), why))
    return problems


def _kserve_routes(overlay: Overlay, source: Source) -> list[Problem]:
    """`routing.madeBy: kserve`: only with `runtime: kserve`, no canary, hosts as KServe's domain template.

    KServe's default `domainTemplate` is `{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}` and its
    HTTPRoute matches every path, so the overlay's host and path must be those (a review of dist/ then
    shows the host that will answer).
    """
    routing = overlay.routing
    if not isinstance(routing, GatewayRouting) or routing.made_by != "kserve":
        return []
    if overlay.runtime not in KSERVE_RUNTIMES:
        why = (
            "'kserve' needs runtime: kserve or kserve-serverless (KServe's controller makes that route); "
            "allowed: madeBy platform"
        )
        return [source.problem(("routing", "madeBy"), why)]
    problems = []
    for name, svc in sorted(overlay.services.items()):
        if svc.canary is not None and overlay.runtime == "kserve":
            problems.append(
                source.problem(
                    ("services", name, "canary"),
                    "KServe's RawDeployment routes do not split traffic (routing.madeBy: kserve); "
                    "allowed: no canary, or routing.madeBy platform",
                )
            )
        host = f"{name}-{overlay.namespace}.{routing.ingress_domain}"
        if svc.host != host:
            problems.append(
                source.problem(
                    ("services", name, "host"),
                    f"{svc.host!r}, but KServe names it <service>-<namespace>.<ingressDomain>; "
                    f"allowed: {host!r}",
                )
            )
        if svc.path != "/":
            problems.append(
                source.problem(
                    ("services", name, "path"),
                    f"{svc.path!r}, but KServe's HTTPRoute serves the whole host; allowed: /",
                )
            )
    return problems


def _mesh_identities(platform: Platform, overlay: Overlay, source: Source) -> list[Problem]:
    """On a mesh, a connection from a peer is authorized by the peer's ServiceAccount: it must be known (where
    the overlay moves the peer, from the overlay's entry; otherwise from platform.yaml's)."""
    if overlay.mesh == "none":
        return []
    absent = set() if overlay.jobs.enabled else platform.job_components()
    sources = sorted({c.source for c in platform.connections if not {c.source, c.target} & absent})
    problems, unnamed = [], []
    for name in (n for n in sources if n in platform.peers):
        here = overlay.peers.get(name)
        if here is not None and here.service_account is None:
            problems.append(
                source.problem(
                    ("peers", name),
                    f"no serviceAccount, but mesh is {overlay.mesh} and {name!r} opens connections; allowed: "
                    "the ServiceAccount its pods run as (its identity on the mesh)",
                )
            )
        elif here is None and platform.peers[name].service_account is None:
            unnamed.append(name)
    if unnamed:
        problems.append(
            source.problem(
                ("mesh",),
                f"{overlay.mesh}, but peers {', '.join(unnamed)} have no serviceAccount (mesh identity); "
                f"allowed: peers.<name>.serviceAccount in {PLATFORM_FILE}, or none",
            )
        )
    return problems


def _namespace(platform: Platform, overlay: Overlay, source: Source) -> list[Problem]:
    taken = {ns: "a system namespace" for ns in SYSTEM_NAMESPACES}
    taken[platform.argocd.namespace] = "Argo CD's namespace"
    peers = {name: p.namespace for name, p in platform.peers.items()}
    peers.update({name: p.namespace for name, p in overlay.peers.items()})
    for name, namespace in sorted(peers.items()):
        taken.setdefault(namespace, f"where peer {name!r} runs")
    why = taken.get(overlay.namespace)
    if why is None:
        return []
    return [
        source.problem(
            ("namespace",),
            f"{overlay.namespace!r} is {why}; the environment's default-deny and quota would apply there; "
            "allowed: a namespace of its own",
        )
    ]


def models_in_catalog(
    models: Sequence[Model], at: FieldPath, source: Source, catalog: Catalog
) -> list[Problem]:
    """Every model version named at `at` (a list of models) must be one the model build makes."""
    problems = []
    for i, model in enumerate(models):
        if model.name not in catalog.models:
            problems.append(
                source.problem(
                    (*at, i, "name"),
                    f"model {model.name!r} is not in {CATALOG_FILE}"
                    f"{did_you_mean(model.name, catalog.models)}; allowed: {choices(catalog.models)}",
                )
            )
        elif not catalog.has(model.name, model.version):
            problems.append(
                source.problem(
                    (*at, i, "version"),
                    f"{model.name} version {model.version!r} is not in {CATALOG_FILE}; "
                    f"allowed (versions that exist): {choices(catalog.versions(model.name), in_order=True)}",
                )
            )
    return problems


def platform_models(platform: Platform, source: Source, catalog: Catalog) -> list[Problem]:
    problems = []
    for name, svc in sorted(platform.services.items()):
        problems += models_in_catalog(svc.models, ("services", name, "models"), source, catalog)
    return problems


def overlay_models(overlay: Overlay, source: Source, catalog: Catalog) -> list[Problem]:
    problems = []
    for name, svc in sorted(overlay.services.items()):
        if svc.canary is not None:
            at = ("services", name, "canary", "models")
            problems += models_in_catalog(svc.canary.models, at, source, catalog)
    return problems


def _same_cluster(server: str) -> str:
    """One spelling per API server: https's default port is the same server."""
    scheme, _, rest = server.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host.removesuffix(':443')}{slash}{path}"


def _servers(overlay: Overlay) -> list[tuple[FieldPath, str]]:
    """(where in the overlay, API server) for each cluster the environment runs on."""
    if overlay.cluster is not None:
        return [(("namespace",), overlay.cluster.server)]
    return [(("clusters", c, "server"), p.server) for c, p in sorted((overlay.clusters or {}).items())]


def _hosts(overlay: Overlay) -> dict[str, FieldPath]:
    """host -> where the overlay first names it: the services' hosts and their clusters' own."""
    found: dict[str, FieldPath] = {}
    for name, svc in sorted(overlay.services.items()):
        found.setdefault(svc.host, ("services", name, "host"))
    for cluster, placement in sorted((overlay.clusters or {}).items()):
        for name, change in sorted(placement.services.items()):
            if change.host is not None:
                found.setdefault(change.host, ("clusters", cluster, "services", name, "host"))
    return found


def across_environments(loaded: Sequence[Loaded]) -> list[Problem]:
    """No two environments share a (cluster, namespace) or a host; the later file (by name) is reported.
    (The clusters of one environment may share its hosts: one name, served in each region.)"""
    problems: list[Problem] = []
    destinations: dict[tuple[str, str], str] = {}
    hosts: dict[str, str] = {}
    for item in sorted(loaded, key=lambda i: i.env):
        if item.overlay is None:
            continue
        overlay, source = item.overlay, item.source
        for at, server in _servers(overlay):
            destination = (_same_cluster(server), overlay.namespace)
            if destination in destinations:
                problems.append(
                    source.problem(
                        at,
                        f"{overlay.namespace!r} on {server} is already used by {destinations[destination]}; "
                        "allowed: one environment per cluster and namespace",
                    )
                )
            destinations.setdefault(destination, item.source.file)
        mine = _hosts(overlay)
        for host, at in mine.items():
            if host in hosts:
                problems.append(
                    source.problem(
                        at,
                        f"{host!r} is already used by {hosts[host]}; "
                        "allowed: a host no other environment uses",
                    )
                )
        for host in mine:
            hosts.setdefault(host, item.source.file)
    return problems
