"""NetworkPolicies: default-deny, DNS egress, and one policy per side of every declared connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cdk8s_plus_33 import k8s

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import WAVE_NAMESPACE, Meta, port

if TYPE_CHECKING:
    from mlplatform import network


def _selector(match_labels: dict[str, str]) -> k8s.LabelSelector:
    return k8s.LabelSelector(match_labels=dict(match_labels) if match_labels else None)


def _peer(peer: network.Peer) -> k8s.NetworkPolicyPeer:
    if peer.ip_block is not None:
        block = k8s.IpBlock(cidr=peer.ip_block.cidr, except_=list(peer.ip_block.excepted) or None)
        return k8s.NetworkPolicyPeer(ip_block=block)
    namespace = None
    if peer.namespace is not None:
        namespace = _selector({names.NAMESPACE_NAME: peer.namespace})
    return k8s.NetworkPolicyPeer(namespace_selector=namespace, pod_selector=_selector(peer.pod_labels))


def _ports(rule: network.Rule) -> list[k8s.NetworkPolicyPort]:
    return [k8s.NetworkPolicyPort(port=port(p.port), protocol=p.protocol) for p in rule.ports]


def policy_spec(policy: network.Policy) -> k8s.NetworkPolicySpec:
    ingress = [k8s.NetworkPolicyIngressRule(from_=[_peer(r.peer)], ports=_ports(r)) for r in policy.ingress]
    egress = [k8s.NetworkPolicyEgressRule(to=[_peer(r.peer)], ports=_ports(r)) for r in policy.egress]
    return k8s.NetworkPolicySpec(
        pod_selector=_selector(policy.pod_selector),
        ingress=ingress or None,
        egress=egress or None,
        policy_types=policy.policy_types,
    )


class NetworkPolicies(Construct):
    """Nothing undeclared can talk: one NetworkPolicy per `policies` (`mlplatform.network.policies`, the
    rules planned from the spec)."""

    def __init__(
        self, scope: Construct, id: str, *, namespace: str, platform: str, policies: Sequence[network.Policy]
    ) -> None:
        super().__init__(scope, id)
        common = names.common(platform=platform, name=platform, component="network")
        meta = Meta(namespace=namespace, labels=common, wave=WAVE_NAMESPACE)
        for policy in policies:
            k8s.KubeNetworkPolicy(self, policy.name, metadata=meta.l1(policy.name), spec=policy_spec(policy))
