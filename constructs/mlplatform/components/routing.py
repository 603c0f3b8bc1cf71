"""External traffic: an Ingress with cert-manager TLS, or a Gateway API HTTPRoute with weighted canary.

The Ingress is the k8s L1 class (cdk8s-plus's Ingress points at Service port numbers; ours names the port).
"""

from __future__ import annotations

from cdk8s_plus_33 import k8s
from mlplatform_crds.io.k8s.networking import gateway

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import Meta
from mlplatform.components.kserve import PREDICTOR_PORT
from mlplatform.components.pods import HTTP_PORT
from mlplatform.spec import Environment
from mlplatform.spec.overlay import GatewayRouting, IngressRouting, ServiceOverlay
from mlplatform.spec.platform import INFERENCE_PORT

CERT_MANAGER_ISSUER = "cert-manager.io/cluster-issuer"


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
    svc, canary = names.ServiceNames(service), overlay.canary
    weight = canary.weight if canary else 0
    name, number = backend(svc.stable, kserve=kserve)
    backends = [gateway.HttpRouteSpecRulesBackendRefs(name=name, port=number, weight=100 - weight)]
    if canary:
        name, number = backend(svc.canary, kserve=kserve)
        backends.append(gateway.HttpRouteSpecRulesBackendRefs(name=name, port=number, weight=weight))
    path = gateway.HttpRouteSpecRulesMatchesPath(
        type=gateway.HttpRouteSpecRulesMatchesPathType.PATH_PREFIX, value=overlay.path
    )
    rule = gateway.HttpRouteSpecRules(
        matches=[gateway.HttpRouteSpecRulesMatches(path=path)], backend_refs=backends
    )
    spec = gateway.HttpRouteSpec(parent_refs=[parent], hostnames=[overlay.host], rules=[rule])
    gateway.HttpRoute(scope, "route", metadata=meta.api(service), spec=spec)


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
    target = k8s.IngressBackend(
        service=k8s.IngressServiceBackend(name=name, port=k8s.ServiceBackendPort(name=HTTP_PORT))
    )
    path = k8s.HttpIngressPath(path=overlay.path, path_type="Prefix", backend=target)
    spec = k8s.IngressSpec(
        ingress_class_name=routing.class_name,
        tls=[k8s.IngressTls(hosts=[overlay.host], secret_name=svc.tls)],
        rules=[k8s.IngressRule(host=overlay.host, http=k8s.HttpIngressRuleValue(paths=[path]))],
    )
    annotations = {CERT_MANAGER_ISSUER: routing.tls_issuer}
    k8s.KubeIngress(scope, "ingress", metadata=meta.l1(service, annotations=annotations), spec=spec)


def route(scope: Construct, *, meta: Meta, env: Environment, service: str) -> None:
    """The external route to one service: an HTTPRoute on a Gateway, or an Ingress (none where KServe's
    controller makes it: `routing.madeBy: kserve`)."""
    overlay, routing = env.overlay.services[service], env.overlay.routing
    if routing.made_by == "kserve":
        return
    kserve = env.overlay.runtime == "kserve"
    if isinstance(routing, GatewayRouting):
        http_route(scope, meta=meta, service=service, overlay=overlay, routing=routing, kserve=kserve)
    else:
        ingress(scope, meta=meta, service=service, overlay=overlay, routing=routing, kserve=kserve)
