"""Who may talk to whom: the NetworkPolicy rules of an environment, computed from the spec.

Both the NetworkPolicy objects in dist/ (`components.network_policies`) and
`mlplatform.api.declared_network_flows` come from `planned_rules`, so what the policy gate compares against
is exactly what is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mlplatform import names
from mlplatform.runtime_contract import GRPC_PORT
from mlplatform.schema import Environment
from mlplatform.schema.platform import Connection

NAMESPACE_NAME = "kubernetes.io/metadata.name"
DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS = {"k8s-app": "kube-dns"}

Direction = Literal["ingress", "egress"]


@dataclass(frozen=True, slots=True)
class IpBlock:
    """Addresses outside the cluster: a CIDR less the ranges that are not."""

    cidr: str
    excepted: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"cidr": self.cidr, "except": list(self.excepted)} if self.excepted else {"cidr": self.cidr}


@dataclass(frozen=True, slots=True)
class Peer:
    """Pods by labels: in the policy's own namespace (`namespace=None`) or in the named one; or addresses."""

    pod_labels: dict[str, str]
    namespace: str | None = None
    ip_block: IpBlock | None = None

    def as_dict(self) -> dict[str, Any]:
        """The NetworkPolicyPeer exactly as rendered in dist/."""
        if self.ip_block is not None:
            return {"ipBlock": self.ip_block.as_dict()}
        peer: dict[str, Any] = {}
        if self.namespace is not None:
            peer["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME: self.namespace}}
        peer["podSelector"] = {"matchLabels": dict(self.pod_labels)}
        return peer


@dataclass(frozen=True, slots=True)
class Port:
    port: int
    protocol: Literal["TCP", "UDP"] = "TCP"

    def as_dict(self) -> dict[str, Any]:
        return {"port": self.port, "protocol": self.protocol}


KUBE_DNS = Peer(DNS_POD_LABELS, DNS_NAMESPACE)
DNS_PORTS = (Port(53, "UDP"), Port(53, "TCP"))
#: On an Istio mesh every sidecar keeps one connection to the control plane (istiod, its standard labels in
#: istio-system): configuration (xDS) and workload certificates, on 15012.
ISTIOD = Peer({"app": "istiod"}, "istio-system")
ISTIOD_PORTS = (Port(15012),)
#: Knative's data path (`runtime: kserve-serverless`; knative.dev/serving pkg/apis/networking, the pinned
#: module): requests reach a pod through its queue-proxy sidecar on 8012, which hands them to the container,
#: from Knative's ingress or from its activator (which holds requests while a service is at zero); the
#: autoscaler reads each pod's load from queue-proxy on 9090. Their standard labels in knative-serving.
QUEUE_PROXY_PORTS = (Port(8012),)
QUEUE_PROXY_METRICS_PORTS = (Port(9090),)


@dataclass(frozen=True, slots=True)
class KnativeCaller:
    """A Knative component that reaches every serverless pod: the name its rules carry, its pods, the
    queue-proxy ports it uses, and its ServiceAccount (its identity on a mesh; config/core/deployments/)."""

    name: str
    peer: Peer
    ports: tuple[Port, ...]
    service_account: str


KNATIVE_CALLERS = (
    KnativeCaller(
        "knative-activator", Peer({"app": "activator"}, "knative-serving"), QUEUE_PROXY_PORTS, "activator"
    ),
    KnativeCaller(
        "knative-autoscaler",
        Peer({"app": "autoscaler"}, "knative-serving"),
        QUEUE_PROXY_METRICS_PORTS,
        "controller",
    ),
)
#: Where model sources (an OCI registry, an https:// URL) are: any public address on 443. Private, shared
#: (CGNAT), loopback and link-local ranges are excepted: they hold the cluster's pods and services and the
#: cloud metadata endpoint, which a model fetch has no business reaching.
PUBLIC_V4 = IpBlock(
    "0.0.0.0/0",
    ("10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"),
)
PUBLIC_V6 = IpBlock("::/0", ("::1/128", "fc00::/7", "fe80::/10"))
MODEL_SOURCE_PEERS = (Peer({}, ip_block=PUBLIC_V4), Peer({}, ip_block=PUBLIC_V6))
HTTPS_PORTS = (Port(443),)
#: Catalog source kinds fetched over the network (a `pvc` source is read from a volume).
NETWORK_SOURCES = ("https", "oci")


@dataclass(frozen=True, slots=True)
class Rule:
    """One allowed flow: its policy, the pods it applies to, the direction, the peer, the ports."""

    policy: str
    pod_selector: dict[str, str]
    direction: Direction
    peer: Peer
    ports: tuple[Port, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    """One NetworkPolicy: the pods it selects ({} = all) and its rules of each direction."""

    name: str
    pod_selector: dict[str, str]
    ingress: list[Rule] = field(default_factory=list)
    egress: list[Rule] = field(default_factory=list)

    @property
    def policy_types(self) -> list[str]:
        if not self.ingress and not self.egress:  # default-deny: both directions, no rule
            return ["Ingress", "Egress"]
        return [t for t, rules in (("Ingress", self.ingress), ("Egress", self.egress)) if rules]


def peer_of(env: Environment, component: str) -> Peer:
    """The peer for a component: same-namespace pods, or a declared external peer."""
    peers = env.platform.peers | env.overlay.peers
    if component in peers:
        peer = peers[component]
        return Peer(dict(sorted(peer.pod_labels.items())), peer.namespace)
    return Peer(names.select(component))


def rendered_connections(env: Environment) -> list[tuple[Connection, tuple[Port, ...]]]:
    """The spec's connections that exist in the environment, each with the target's ports it may use."""
    platform = env.platform
    absent = set() if env.overlay.jobs.enabled else platform.job_components()
    found = []
    for conn in platform.connections:
        if {conn.source, conn.target} & absent:
            continue  # jobs are off here: no jobs Redis, no workers
        ports: tuple[Port, ...] = (Port(platform.port_of(conn.target)[1]),)
        if serverless(env) and conn.target in platform.services:
            ports = QUEUE_PROXY_PORTS  # Knative's queue-proxy takes the requests (HTTP only)
        elif conn.grpc and env.serves_grpc(conn.target):  # only the connections that ask for it
            ports += (Port(GRPC_PORT),)
        found.append((conn, ports))
    return found


def serverless(env: Environment) -> bool:
    """Knative runs the services' pods (`runtime: kserve-serverless`)."""
    return env.overlay.runtime == "kserve-serverless"


def redis_replication_ports(env: Environment) -> tuple[Port, ...]:
    """Where the overlay runs several Redis replicas, they replicate from redis-0 on the redis port."""
    return (Port(env.platform.port_of(names.REDIS)[1]),) if env.overlay.redis.replicas > 1 else ()


def planned_rules(env: Environment) -> list[Rule]:
    """Every allow rule of the environment, in a stable order."""
    platform = env.platform
    rules = [Rule(names.ALLOW_DNS, {}, "egress", KUBE_DNS, DNS_PORTS)]
    if env.overlay.mesh == "istio":
        rules.append(Rule(names.ALLOW_ISTIOD, {}, "egress", ISTIOD, ISTIOD_PORTS))
    external = set(platform.peers)
    for conn, ports in rendered_connections(env):
        if conn.source not in external:
            own, peer = names.select(conn.source), peer_of(env, conn.target)
            rules.append(Rule(names.allow_to(conn.source, conn.target), own, "egress", peer, ports))
        own, peer = names.select(conn.target), peer_of(env, conn.source)
        rules.append(Rule(names.allow_from(conn.target, conn.source), own, "ingress", peer, ports))
    for name in sorted(platform.services):
        if fetches_over_network(env, name):
            # the service's job worker loads the same models the same way
            fetchers = [name, names.ServiceNames(name).worker] if env.overlay.jobs.enabled else [name]
            for fetcher in fetchers:
                policy, own = names.allow_model_sources(fetcher), names.select(fetcher)
                rules += [Rule(policy, own, "egress", peer, HTTPS_PORTS) for peer in MODEL_SOURCE_PEERS]
    for name in sorted(platform.services):
        rules += jwks_rules(env, name)
    for name in sorted(platform.services) if serverless(env) else ():
        for caller in KNATIVE_CALLERS:
            policy = names.allow_from(name, caller.name)
            rules.append(Rule(policy, names.select(name), "ingress", caller.peer, caller.ports))
    ports = redis_replication_ports(env)
    if ports:
        own, peer = names.select(names.REDIS), peer_of(env, names.REDIS)
        rules.append(Rule(names.REDIS_REPLICATION, own, "egress", peer, ports))
        rules.append(Rule(names.REDIS_REPLICATION, own, "ingress", peer, ports))
    return rules


def jwks_rules(env: Environment, service: str) -> list[Rule]:
    """Egress to the OIDC issuer's JWKS URL: exactly the overlay's CIDRs on its port (443), nothing else.

    The one egress that is not a declared connection between components: the issuer is outside the cluster
    and named by addresses (README "Network"), so it is allowed per service, only where its JWKS is a URL.
    """
    identity = env.overlay.services[service].identity
    egress = identity.jwks.egress if identity is not None else None
    if egress is None:
        return []
    policy, own, ports = names.allow_oidc_jwks(service), names.select(service), (Port(egress.port),)
    return [Rule(policy, own, "egress", Peer({}, ip_block=IpBlock(cidr, ())), ports) for cidr in egress.cidrs]


def fetches_over_network(env: Environment, service: str) -> bool:
    """Whether some version of the service has a model whose catalog source is an OCI artifact or a URL."""
    models = list(env.platform.services[service].models)
    canary = env.overlay.services[service].canary
    models += canary.models if canary is not None else []
    return any(source.kind in NETWORK_SOURCES for _, source in env.remote_sources(models))


def policies(env: Environment) -> list[Policy]:
    """Every NetworkPolicy: default-deny first, then one policy per rule group, in rule order."""
    grouped: dict[str, Policy] = {}
    for rule in planned_rules(env):
        policy = grouped.setdefault(rule.policy, Policy(rule.policy, rule.pod_selector))
        (policy.ingress if rule.direction == "ingress" else policy.egress).append(rule)
    return [Policy(names.DEFAULT_DENY, {}), *grouped.values()]


def flows(env: Environment) -> list[dict[str, Any]]:
    """The rules as plain dicts (the `mlplatform.api` contract)."""
    return [
        {
            "namespace": env.namespace,
            "policy_pod_selector": dict(rule.pod_selector),
            "direction": rule.direction,
            "peer": rule.peer.as_dict(),
            "ports": [p.as_dict() for p in rule.ports],
        }
        for rule in planned_rules(env)
    ]
