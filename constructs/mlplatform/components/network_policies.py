"""NetworkPolicies: default-deny, DNS egress, and one policy per side of every declared connection."""

from __future__ import annotations

from cdk8s_plus_33 import k8s

from constructs import Construct
from mlplatform import names, network
from mlplatform.components.base import WAVE_NAMESPACE, Meta, port
from mlplatform.schema import Environment


def _selector(match_labels: dict[str, str]) -> k8s.LabelSelector:
    return k8s.LabelSelector(match_labels=dict(match_labels) if match_labels else None)


def _peer(peer: network.Peer) -> k8s.NetworkPolicyPeer:
    if peer.ip_block is not None:
        block = k8s.IpBlock(cidr=peer.ip_block.cidr, except_=list(peer.ip_block.excepted) or None)
        return k8s.NetworkPolicyPeer(ip_block=block)
    namespace = None
    if peer.namespace is not None:
        namespace = _selector({network.NAMESPACE_NAME: peer.namespace})
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
    """Nothing undeclared can talk: see `mlplatform.network` for the rules."""

    def __init__(self, scope: Construct, id: str, *, env: Environment) -> None:
        super().__init__(scope, id)
        common = names.common(platform=env.platform.name, name=env.platform.name, component="network")
        meta = Meta(namespace=env.namespace, labels=common, wave=WAVE_NAMESPACE)
        for policy in network.policies(env):
            k8s.KubeNetworkPolicy(self, policy.name, metadata=meta.l1(policy.name), spec=policy_spec(policy))
