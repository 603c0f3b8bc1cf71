"""The rendered NetworkPolicies allow exactly the declared connections (plus DNS) and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplatform.api import declared_network_flows, list_environments
from mlplatform.schema import load_environment

NAME = "app.kubernetes.io/name"


def _rendered_flows(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flows = []
    for obj in objs:
        if obj["kind"] != "NetworkPolicy":
            continue
        spec = obj["spec"]
        selector = spec["podSelector"].get("matchLabels", {})
        for direction, peer_key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction, []):
                for peer in rule[peer_key]:
                    flows.append(
                        {
                            "namespace": obj["metadata"]["namespace"],
                            "policy_pod_selector": selector,
                            "direction": direction,
                            "peer": peer,
                            "ports": rule["ports"],
                        }
                    )
    return flows


def _key(flow: dict[str, Any]) -> str:
    return repr(sorted((k, repr(v)) for k, v in flow.items()))


def test_rendered_rules_equal_declared_flows(
    objects: dict[str, list[dict[str, Any]]], repo_root: Path
) -> None:
    for env in list_environments(repo_root):
        rendered = sorted(map(_key, _rendered_flows(objects[env])))
        declared = sorted(map(_key, declared_network_flows(env, repo_root=repo_root)))
        assert rendered == declared, env


def test_default_deny_and_every_rule_has_ports(
    objects: dict[str, list[dict[str, Any]]], repo_root: Path
) -> None:
    for env in list_environments(repo_root):
        policies = {o["metadata"]["name"]: o for o in objects[env] if o["kind"] == "NetworkPolicy"}
        deny = policies["default-deny"]["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        for flow in _rendered_flows(objects[env]):
            assert flow["ports"], flow  # no rule opens every port


def test_allowed_edges_are_exactly_the_connections(
    objects: dict[str, list[dict[str, Any]]], repo_root: Path
) -> None:
    """Independent of mlplatform.network: read the edges back from the policies and compare with the spec."""
    for env_name in list_environments(repo_root):
        env = load_environment(env_name, repo_root=repo_root)
        peers = env.platform.peers | env.overlay.peers
        by_labels = {tuple(sorted(p.pod_labels.items())): name for name, p in peers.items()}
        # connections with the jobs Redis or a job worker exist only where the overlay enables jobs
        jobs_parts = {"jobs-redis", *(f"{s}-worker" for s in env.platform.services)}
        connections = [
            c
            for c in env.platform.connections
            if env.overlay.jobs.enabled or not {c.source, c.target} & jobs_parts
        ]
        grpc = {(c.source, c.target) for c in connections if c.grpc}  # the gRPC port as well
        expected_in = {(c.source, c.target) for c in connections}
        expected_out = {(c.source, c.target) for c in connections if c.source not in peers}
        if env.overlay.redis.replicas > 1:
            expected_in.add(("redis", "redis"))
            expected_out.add(("redis", "redis"))
        got_in, got_out = set(), set()
        for flow in _rendered_flows(objects[env_name]):
            peer_labels = flow["peer"]["podSelector"]["matchLabels"]
            if flow["policy_pod_selector"] == {}:
                assert flow["direction"] == "egress"
                assert peer_labels == {"k8s-app": "kube-dns"}
                assert {p["port"] for p in flow["ports"]} == {53}
                continue
            me = flow["policy_pod_selector"][NAME]
            if "namespaceSelector" in flow["peer"]:
                other = by_labels[tuple(sorted(peer_labels.items()))]
                ns = flow["peer"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                assert ns == peers[other].namespace
            else:
                other = peer_labels[NAME]
            target = me if flow["direction"] == "ingress" else other
            port = 6379 if target in ("redis", "jobs-redis") else 8080
            edge = (other, me) if flow["direction"] == "ingress" else (me, other)
            ports = [port, 8081] if edge in grpc and env.overlay.runtime == "deployment" else [port]
            assert flow["ports"] == [{"port": p, "protocol": "TCP"} for p in ports], (env_name, edge)
            if flow["direction"] == "ingress":
                got_in.add((other, me))
            else:
                got_out.add((me, other))
        assert got_in == expected_in, env_name
        assert got_out == expected_out, env_name


def test_undeclared_edge_disappears(spec_copy: Path, edit_yaml: Any) -> None:
    edit_yaml(
        spec_copy / "overlays" / "platform.yaml",
        lambda d: d.update(
            connections=[c for c in d["connections"] if c["from"] != "metrics-scraper"],
        ),
    )
    flows = declared_network_flows("dev", repo_root=spec_copy)
    assert not any(
        f["peer"].get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        == "monitoring"
        for f in flows
    )
