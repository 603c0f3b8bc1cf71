"""External traffic: an Ingress with cert-manager TLS, or a Gateway API HTTPRoute with weighted canary."""

from __future__ import annotations

from typing import Any

from constructs import Construct
from mlplatform import labels
from mlplatform.components.base import WAVE_SERVICES, Component, metadata
from mlplatform.spec import Environment
from mlplatform.spec.overlay import GatewayRouting
from mlplatform.spec.platform import INFERENCE_PORT

CERT_MANAGER_ISSUER = "cert-manager.io/cluster-issuer"


def routing_manifest(env: Environment, name: str) -> dict[str, Any]:
    overlay = env.overlay.services[name]
    routing = env.overlay.routing
    common = labels.common(platform=env.platform.name, name=name, component="inference")
    if isinstance(routing, GatewayRouting):
        parent: dict[str, Any] = {"name": routing.gateway.name, "namespace": routing.gateway.namespace}
        if routing.gateway.section_name:
            parent["sectionName"] = routing.gateway.section_name
        canary = overlay.canary
        backends = [{"name": name, "port": INFERENCE_PORT, "weight": 100 - (canary.weight if canary else 0)}]
        if canary:
            backends.append({"name": f"{name}-canary", "port": INFERENCE_PORT, "weight": canary.weight})
        return {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": metadata(name=name, namespace=env.namespace, labels=common, wave=WAVE_SERVICES),
            "spec": {
                "parentRefs": [parent],
                "hostnames": [overlay.host],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": overlay.path}}],
                        "backendRefs": backends,
                    }
                ],
            },
        }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(
            name=name,
            namespace=env.namespace,
            labels=common,
            wave=WAVE_SERVICES,
            annotations={CERT_MANAGER_ISSUER: routing.tls_issuer},
        ),
        "spec": {
            "ingressClassName": routing.class_name,
            "tls": [{"hosts": [overlay.host], "secretName": f"{name}-tls"}],
            "rules": [
                {
                    "host": overlay.host,
                    "http": {
                        "paths": [
                            {
                                "path": overlay.path,
                                "pathType": "Prefix",
                                "backend": {"service": {"name": name, "port": {"name": "http"}}},
                            }
                        ]
                    },
                }
            ],
        },
    }


class Routing(Component):
    """The external route to one service."""

    def __init__(self, scope: Construct, id: str, *, env: Environment, name: str) -> None:
        super().__init__(scope, id)
        self.emit(routing_manifest(env, name))
