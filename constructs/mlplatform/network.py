"""Who may talk to whom: the NetworkPolicy rules of an environment, computed from the spec.

Both the NetworkPolicy objects in dist/ and `mlplatform.api.declared_network_flows` come from
`planned_rules`, so what the policy gate compares against is exactly what is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mlplatform import labels
from mlplatform.spec import Environment

KUBE_DNS_PEER: dict[str, Any] = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
DNS_PORTS = ({"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"})
DEFAULT_DENY = "default-deny"
ALLOW_DNS = "allow-dns"


@dataclass(frozen=True)
class Rule:
    """One allowed flow: its policy, the pods it applies to, the direction, the peer, the ports."""

    policy: str
    pod_selector: dict[str, str]
    direction: Literal["ingress", "egress"]
    peer: dict[str, Any]
    ports: tuple[dict[str, Any], ...]


def peer_of(env: Environment, component: str) -> dict[str, Any]:
    """The NetworkPolicyPeer for a component: same-namespace pods, or a declared external peer."""
    peers = env.platform.peers | env.overlay.peers
    if component in peers:
        peer = peers[component]
        return {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": peer.namespace}},
            "podSelector": {"matchLabels": dict(sorted(peer.pod_labels.items()))},
        }
    return {"podSelector": {"matchLabels": labels.select(component)}}


def planned_rules(env: Environment) -> list[Rule]:
    """Every allow rule of the environment, in a stable order."""
    platform = env.platform
    rules = [Rule(ALLOW_DNS, {}, "egress", KUBE_DNS_PEER, DNS_PORTS)]
    external = set(platform.peers)
    for conn in platform.connections:
        _, port = platform.port_of(conn.target)
        ports = ({"port": port, "protocol": "TCP"},)
        if conn.source not in external:
            rules.append(
                Rule(
                    f"allow-{conn.source}-to-{conn.target}",
                    labels.select(conn.source),
                    "egress",
                    peer_of(env, conn.target),
                    ports,
                )
            )
        rules.append(
            Rule(
                f"allow-{conn.target}-from-{conn.source}",
                labels.select(conn.target),
                "ingress",
                peer_of(env, conn.source),
                ports,
            )
        )
    if env.overlay.redis.replicas > 1:
        # replicas replicate from redis-0: redis pods talk to each other on the redis port
        _, port = platform.port_of("redis")
        own = peer_of(env, "redis")
        ports = ({"port": port, "protocol": "TCP"},)
        rules.append(Rule("allow-redis-replication", labels.select("redis"), "egress", own, ports))
        rules.append(Rule("allow-redis-replication", labels.select("redis"), "ingress", own, ports))
    return rules


def policy_bodies(env: Environment) -> list[tuple[str, dict[str, Any]]]:
    """(name, spec) of every NetworkPolicy: default-deny first, then one policy per rule group."""
    bodies: list[tuple[str, dict[str, Any]]] = [
        (DEFAULT_DENY, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    ]
    grouped: dict[str, list[Rule]] = {}
    for rule in planned_rules(env):
        grouped.setdefault(rule.policy, []).append(rule)
    for name, rules in grouped.items():
        spec: dict[str, Any] = {"podSelector": _selector(rules[0].pod_selector)}
        types = []
        for direction, key, peer_key in (("ingress", "Ingress", "from"), ("egress", "Egress", "to")):
            mine = [r for r in rules if r.direction == direction]
            if mine:
                types.append(key)
                spec[direction] = [{peer_key: [r.peer], "ports": [dict(p) for p in r.ports]} for r in mine]
        spec["policyTypes"] = types
        bodies.append((name, spec))
    return bodies


def _selector(match_labels: dict[str, str]) -> dict[str, Any]:
    return {"matchLabels": dict(match_labels)} if match_labels else {}


def flows(env: Environment) -> list[dict[str, Any]]:
    """The rules as plain dicts (the `mlplatform.api` contract)."""
    return [
        {
            "namespace": env.namespace,
            "policy_pod_selector": dict(rule.pod_selector),
            "direction": rule.direction,
            "peer": rule.peer,
            "ports": [dict(p) for p in rule.ports],
        }
        for rule in planned_rules(env)
    ]
