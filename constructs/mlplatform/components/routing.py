"""External traffic: an Ingress with cert-manager TLS, or a Gateway API HTTPRoute with weighted canary.

The Ingress is the k8s L1 class (cdk8s-plus's Ingress points at Service port numbers; ours names the port).
Where an overlay names a service's `grpcHost`, its gRPC port gets a route of its own on that host: a
GRPCRoute with the HTTPRoute's canary weights, or an nginx Ingress with `backend-protocol: GRPC`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdk8s_plus_33 import k8s
from mlplatform_crds.io.k8s.networking import gateway

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import Meta
from mlplatform.runtime_contract import GRPC_PORT, GRPC_PORT_NAME, HTTP_PORT_NAME, INFERENCE_PORT

if TYPE_CHECKING:
    from mlplatform.schema.overlay import GatewayRouting, IngressRouting, ServiceOverlay

#: KServe's predictor Service listens on 80 and targets the container's first port (ours: `http`, 8080).
PREDICTOR_PORT = 80
CERT_MANAGER_ISSUER = "cert-manager.io/cluster-issuer"
#: ingress-nginx proxies the Ingress's backends over gRPC (HTTP/2) instead of HTTP/1.1.
NGINX_BACKEND_PROTOCOL = "nginx.ingress.kubernetes.io/backend-protocol"


def backend(version: names.Version, *, kserve: bool) -> tuple[str, int]:
    """The Service and port a route sends a version's traffic to: ours, or KServe's predictor Service."""
    if kserve:
        return version.predictor, PREDICTOR_PORT
    return version.name, INFERENCE_PORT


def http_route(
    scope: Construct,
    *,
    meta: Meta,
    service: str,
    overlay: ServiceOverlay,
    routing: GatewayRouting,
    kserve: bool = False,
) -> None:
    """An HTTPRoute on the shared Gateway; with a canary, the stable and canary Services split by weight."""
    ref = routing.gateway
    parent = gateway.HttpRouteSpecParentRefs(
        name=ref.name, namespace=ref.namespace, section_name=ref.section_name
    )
    backends = []
    for version, weight in weighted(service, overlay):
        name, number = backend(version, kserve=kserve)
        backends.append(gateway.HttpRouteSpecRulesBackendRefs(name=name, port=number, weight=weight))
    path = gateway.HttpRouteSpecRulesMatchesPath(
        type=gateway.HttpRouteSpecRulesMatchesPathType.PATH_PREFIX, value=overlay.path
    )
    rule = gateway.HttpRouteSpecRules(
        matches=[gateway.HttpRouteSpecRulesMatches(path=path)], backend_refs=backends
    )
    spec = gateway.HttpRouteSpec(parent_refs=[parent], hostnames=[overlay.host], rules=[rule])
    gateway.HttpRoute(scope, "route", metadata=meta.api(service), spec=spec)


def weighted(service: str, overlay: ServiceOverlay) -> list[tuple[names.Version, int]]:
    """The versions a route splits a service's traffic over, with their weights (the canary's, if any)."""
    svc, canary = names.ServiceNames(service), overlay.canary
    if canary is None:
        return [(svc.stable, 100)]
    return [(svc.stable, 100 - canary.weight), (svc.canary, canary.weight)]


def grpc_route(
    scope: Construct, *, meta: Meta, service: str, overlay: ServiceOverlay, routing: GatewayRouting, host: str
) -> None:
    """A GRPCRoute on the shared Gateway for the gRPC port: every method, the HTTPRoute's canary weights."""
    ref = routing.gateway
    parent = gateway.GrpcRouteSpecParentRefs(
        name=ref.name, namespace=ref.namespace, section_name=ref.section_name
    )
    backends = [
        gateway.GrpcRouteSpecRulesBackendRefs(name=version.name, port=GRPC_PORT, weight=weight)
        for version, weight in weighted(service, overlay)
    ]
    spec = gateway.GrpcRouteSpec(
        parent_refs=[parent], hostnames=[host], rules=[gateway.GrpcRouteSpecRules(backend_refs=backends)]
    )
    name = names.ServiceNames(service).grpc_route
    gateway.GrpcRoute(scope, "grpc-route", metadata=meta.api(name), spec=spec)


def ingress(
    scope: Construct,
    *,
    meta: Meta,
    service: str,
    overlay: ServiceOverlay,
    routing: IngressRouting,
    kserve: bool = False,
) -> None:
    """An Ingress for the stable Service, with a TLS certificate from cert-manager's cluster issuer.

    The port is named: ours and KServe's predictor Service both name it after the container port (`http`).
    """
    svc = names.ServiceNames(service)
    name = backend(svc.stable, kserve=kserve)[0]
    _ingress(
        scope,
        "ingress",
        meta=meta,
        name=service,
        backend=(name, HTTP_PORT_NAME),
        host=overlay.host,
        path=overlay.path,
        tls=svc.tls,
        routing=routing,
    )


def grpc_ingress(scope: Construct, *, meta: Meta, service: str, routing: IngressRouting, host: str) -> None:
    """An Ingress of its own for the gRPC port (nginx proxies a whole Ingress over gRPC or none of it): the
    whole host, its own certificate. Clients reach it with TLS on 443 (nginx speaks HTTP/2 to them there)."""
    svc = names.ServiceNames(service)
    _ingress(
        scope,
        "grpc-ingress",
        meta=meta,
        name=svc.grpc_route,
        backend=(svc.stable.name, GRPC_PORT_NAME),
        host=host,
        path="/",
        tls=svc.grpc_tls,
        routing=routing,
        extra={NGINX_BACKEND_PROTOCOL: "GRPC"},
    )


def _ingress(
    scope: Construct,
    id: str,
    *,
    meta: Meta,
    name: str,
    backend: tuple[str, str],
    host: str,
    path: str,
    tls: str,
    routing: IngressRouting,
    extra: dict[str, str] | None = None,
) -> None:
    service, port_name = backend
    target = k8s.IngressBackend(
        service=k8s.IngressServiceBackend(name=service, port=k8s.ServiceBackendPort(name=port_name))
    )
    rule_path = k8s.HttpIngressPath(path=path, path_type="Prefix", backend=target)
    spec = k8s.IngressSpec(
        ingress_class_name=routing.class_name,
        tls=[k8s.IngressTls(hosts=[host], secret_name=tls)],
        rules=[k8s.IngressRule(host=host, http=k8s.HttpIngressRuleValue(paths=[rule_path]))],
    )
    annotations = {CERT_MANAGER_ISSUER: routing.tls_issuer, **(extra or {})}
    k8s.KubeIngress(scope, id, metadata=meta.l1(name, annotations=annotations), spec=spec)


def route(
    scope: Construct,
    *,
    meta: Meta,
    service: str,
    overlay: ServiceOverlay,
    routing: IngressRouting | GatewayRouting,
    kserve: bool,
    grpc: bool,
) -> None:
    """The external route to one service: an HTTPRoute on a Gateway, or an Ingress (none where KServe's
    controller makes it: `routing.madeBy: kserve`). `kserve`: the runtime is KServe's (its predictor
    Services are the backends); `grpc`: the service's pods serve gRPC (its `grpcHost` gets a route)."""
    if routing.made_by == "kserve":
        return
    grpc_host = overlay.grpc_host if grpc else None  # the spec check refuses the rest
    if routing.kind == "Gateway":
        http_route(scope, meta=meta, service=service, overlay=overlay, routing=routing, kserve=kserve)
        if grpc_host is not None:
            grpc_route(scope, meta=meta, service=service, overlay=overlay, routing=routing, host=grpc_host)
    else:
        ingress(scope, meta=meta, service=service, overlay=overlay, routing=routing, kserve=kserve)
        if grpc_host is not None:
            grpc_ingress(scope, meta=meta, service=service, routing=routing, host=grpc_host)
