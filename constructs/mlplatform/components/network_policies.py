"""NetworkPolicies: default-deny, DNS egress, and one policy per side of every declared connection."""

from __future__ import annotations

from typing import Any

from constructs import Construct
from mlplatform import labels, network
from mlplatform.components.base import WAVE_NAMESPACE, Component, metadata
from mlplatform.spec import Environment


def network_policy_manifests(env: Environment) -> list[dict[str, Any]]:
    common = labels.common(platform=env.platform.name, name=env.platform.name, component="network")
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata(name=name, namespace=env.namespace, labels=common, wave=WAVE_NAMESPACE),
            "spec": spec,
        }
        for name, spec in network.policy_bodies(env)
    ]


class NetworkPolicies(Component):
    """Nothing undeclared can talk: see `mlplatform.network` for the rules."""

    def __init__(self, scope: Construct, id: str, *, env: Environment) -> None:
        super().__init__(scope, id)
        for manifest in network_policy_manifests(env):
            self.emit(manifest)
