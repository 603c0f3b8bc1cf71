"""Who may talk to whom on an Istio mesh (`mesh: istio`): the AuthorizationPolicies of an environment,
computed from the spec.

Each connection the environment renders (network.rendered_connections, the same list its NetworkPolicies
come from) gets one ALLOW policy on the target's pods: from the source's mTLS identity (the principal of the
ServiceAccount its pods run as), to the target ports the connection may use. The namespace also gets an
AuthorizationPolicy with an empty spec, which allows nothing: whatever no ALLOW names is denied. Redis
replicas replicating from each other (more than one replica) is a connection too, and so, on Knative
(`runtime: kserve-serverless`), are its activator and autoscaler reaching each service's queue-proxy.
"""

from __future__ import annotations

from dataclasses import dataclass

import cdk8s

from mlplatform import names
from mlplatform.network import KNATIVE_CALLERS, redis_replication_ports, rendered_connections, serverless
from mlplatform.schema import Environment

#: Istio's default trust domain: principals are `<trust domain>/ns/<namespace>/sa/<service account>`.
TRUST_DOMAIN = "cluster.local"
#: The injected sidecar's size, set on every pod template (Istio's per-pod annotations). Istio's own default
#: limits (2 CPUs, 1Gi per pod) would make the namespace's quota refuse pods at peak scale; these are counted
#: by the quota rule like any container's (its ephemeral storage comes from the namespace's LimitRange).
SIDECAR_RESOURCES = {
    "sidecar.istio.io/proxyCPU": "100m",
    "sidecar.istio.io/proxyMemory": "128Mi",
    "sidecar.istio.io/proxyCPULimit": "500m",
    "sidecar.istio.io/proxyMemoryLimit": "256Mi",
}
#: Where each kind's pods take their annotations from.
POD_ANNOTATIONS = {
    "Deployment": "/spec/template/metadata/annotations",
    "StatefulSet": "/spec/template/metadata/annotations",
    "InferenceService": "/metadata/annotations",  # KServe copies them onto the predictor's pods
}


@dataclass(frozen=True, slots=True)
class Authorization:
    """One ALLOW: the target's pods, the source's principal, the ports."""

    name: str
    source: str
    target: str
    selector: dict[str, str]
    principal: str
    ports: tuple[int, ...]


def principal(namespace: str, service_account: str) -> str:
    return f"{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


def identity_of(env: Environment, component: str) -> str:
    """The principal a component's pods present: a peer's declared ServiceAccount in its namespace, or the
    ServiceAccount the platform runs the component as (spec checks require the peer's on a mesh)."""
    peers = env.platform.peers | env.overlay.peers
    if component in peers:
        peer = peers[component]
        if peer.service_account is None:
            raise ValueError(f"peer {component!r} has no serviceAccount")  # schema.checks refuses it first
        return principal(peer.namespace, peer.service_account)
    return principal(env.namespace, names.service_account_of(component, env.platform.services))


def authorizations(env: Environment) -> list[Authorization]:
    """Every ALLOW of a mesh environment, in connection order ([] off the mesh)."""
    if env.overlay.mesh != "istio":
        return []
    found = [
        Authorization(
            name=names.allow_from(conn.target, conn.source),
            source=conn.source,
            target=conn.target,
            selector=names.select(conn.target),
            principal=identity_of(env, conn.source),
            ports=tuple(p.port for p in ports),
        )
        for conn, ports in rendered_connections(env)
    ]
    for service in sorted(env.platform.services) if serverless(env) else ():
        found += [
            Authorization(
                name=names.allow_from(service, caller.name),
                source=caller.name,
                target=service,
                selector=names.select(service),
                principal=principal(caller.peer.namespace or "", caller.service_account),
                ports=tuple(p.port for p in caller.ports),
            )
            for caller in KNATIVE_CALLERS
        ]
    replication = redis_replication_ports(env)
    if replication:
        found.append(
            Authorization(
                name=names.REDIS_REPLICATION,
                source=names.REDIS,
                target=names.REDIS,
                selector=names.select(names.REDIS),
                principal=identity_of(env, names.REDIS),
                ports=tuple(p.port for p in replication),
            )
        )
    return found


def size_sidecars(chart: cdk8s.Chart) -> None:
    """Annotate every pod template of a mesh environment's chart with SIDECAR_RESOURCES (one place for all
    workloads, rather than a switch threaded through each component)."""
    for obj in (c for c in chart.node.find_all() if isinstance(c, cdk8s.ApiObject)):
        path = POD_ANNOTATIONS.get(obj.kind)
        if path is None:
            continue
        doc = obj.to_json()
        node = doc
        for key in path.strip("/").split("/")[:-1]:
            node = node.get(key) or {}
        if "annotations" not in node:
            obj.add_json_patch(cdk8s.JsonPatch.add(path, dict(SIDECAR_RESOURCES)))
            continue
        for key, value in SIDECAR_RESOURCES.items():
            obj.add_json_patch(cdk8s.JsonPatch.add(f"{path}/{key.replace('/', '~1')}", value))
