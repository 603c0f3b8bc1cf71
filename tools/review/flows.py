"""The network flows a folder's NetworkPolicies allow, worked out from the policies themselves.

Endpoints are the folder's own workloads (by their pod labels and container ports) and whatever a policy's
peer selects outside them (named after a peer of the spec whose namespace and pod labels it selects, else
described by its selectors), an ipBlock, or anyone. A flow between two of our workloads needs the source's
egress and the destination's ingress to allow it (a side no policy isolates allows everything); a flow with
one end outside needs only our side. Flows that every workload of the namespace has (DNS) are shown once, as
`every pod`. Nothing here reads `connections:` or the generator: the answer is what the cluster would enforce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from review.objects import Key, pod_spec, selector

NAME = "kubernetes.io/metadata.name"
EVERY_POD = "every pod"


@dataclass(frozen=True, order=True)
class Flow:
    source: str
    target: str
    port: str  # "TCP 6379", "any port"

    def describe(self) -> str:
        return f"{self.source} → {self.target}, {self.port}"


@dataclass(frozen=True)
class _Workload:
    name: str
    namespace: str
    labels: dict[str, str]
    ports: dict[str, tuple[str, int]]  # port name -> (protocol, number)


def _matches(sel: dict[str, Any], labels: dict[str, str]) -> bool:
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def _port_of(rule_port: dict[str, Any], target: _Workload | None) -> str:
    proto = str(rule_port.get("protocol", "TCP"))
    port = rule_port.get("port")
    if port is None:
        return f"{proto} any port"
    if isinstance(port, str) and target is not None and port in target.ports:
        proto, number = target.ports[port]
        return f"{proto} {number}"
    end = f"-{rule_port['endPort']}" if rule_port.get("endPort") else ""
    return f"{proto} {port}{end}"


def _port_match(allowed: str, wanted: str) -> bool:
    return (
        allowed == "any port"
        or allowed == wanted
        or (
            allowed.endswith(" any port")
            and (wanted == "any port" or allowed.split()[0] == wanted.split()[0])
        )
    )


def allowed(objects: dict[Key, dict[str, Any]], peers: dict[str, dict[str, Any]]) -> set[Flow]:
    """Every flow the folder's NetworkPolicies allow. `peers`: the spec's peer names with their namespace
    and pod labels, used only to name a selector's pods."""
    ns_labels: dict[str, dict[str, str]] = {}
    workloads: list[_Workload] = []
    for (kind, ns, name), obj in sorted(objects.items()):
        if kind == "Namespace":
            ns_labels[name] = {**((obj.get("metadata") or {}).get("labels") or {}), NAME: name}
        pod = pod_spec(obj)
        if pod is None or kind == "Pod":
            continue
        spec = obj.get("spec") or {}
        template = spec.get("template") or {}
        labels = ((template.get("metadata") or {}).get("labels")) or {}
        ports = {
            str(p["name"]): (str(p.get("protocol", "TCP")), int(p["containerPort"]))
            for c in pod.get("containers") or []
            for p in c.get("ports") or []
            if p.get("name")
        }
        workloads.append(_Workload(name, ns, {str(k): str(v) for k, v in labels.items()}, ports))
    policies = [o for (k, _, _), o in sorted(objects.items()) if k == "NetworkPolicy"]

    def labels_of(ns: str) -> dict[str, str]:
        return ns_labels.get(ns, {NAME: ns})

    def resolve(peer: dict[str, Any] | None, policy_ns: str) -> list[tuple[str, _Workload | None]]:
        """The endpoints a peer selects: our workloads, else one described endpoint."""
        if peer is None:
            return [("anyone", None)]
        if "ipBlock" in peer:
            block = peer["ipBlock"]
            rest = f" except {', '.join(block['except'])}" if block.get("except") else ""
            return [(f"addresses {block.get('cidr')}{rest}", None)]
        pod_sel = peer.get("podSelector") or {}
        ns_sel = peer.get("namespaceSelector")
        ours: list[tuple[str, _Workload | None]] = [
            (w.name, w)
            for w in workloads
            if _matches(pod_sel, w.labels)
            and (w.namespace == policy_ns if ns_sel is None else _matches(ns_sel, labels_of(w.namespace)))
        ]
        # a namespaceSelector that names one namespace (by its name label) selects pods there only
        pinned = (
            ns_sel is not None and list(ns_sel) == ["matchLabels"] and list(ns_sel["matchLabels"]) == [NAME]
        )
        only_ours = ns_sel is None or (pinned and ns_sel["matchLabels"][NAME] in ns_labels)
        if only_ours and ours:
            return ours
        named: list[tuple[str, _Workload | None]] = []
        for name, p in sorted(peers.items()):
            pns = str(p.get("namespace", ""))
            in_ns = pns == policy_ns if ns_sel is None else _matches(ns_sel, labels_of(pns))
            if in_ns and _matches(pod_sel, {str(k): str(v) for k, v in (p.get("podLabels") or {}).items()}):
                named.append((f"{name} ({pns})", None))
        if named and pinned:
            return [*ours, *named]
        where = f"namespaces {selector(ns_sel)}" if ns_sel is not None else policy_ns
        return [*ours, *named, (f"pods {selector(pod_sel)} in {where}", None)]

    isolated: dict[str, set[str]] = {"ingress": set(), "egress": set()}
    # (direction, our workload, other end, port) -> allowed by some rule of a policy isolating ours
    rules: set[tuple[str, str, str, str]] = set()
    for np in policies:
        spec = np.get("spec") or {}
        ns = str((np.get("metadata") or {}).get("namespace", ""))
        types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
        selected = [
            w for w in workloads if w.namespace == ns and _matches(spec.get("podSelector") or {}, w.labels)
        ]
        for direction, key in (("ingress", "from"), ("egress", "to")):
            if direction.capitalize() not in types:
                continue
            isolated[direction] |= {w.name for w in selected}
            for rule in spec.get(direction) or []:
                others = [o for p in rule.get(key) or [None] for o in resolve(p, ns)]
                for w in selected:
                    for other, other_w in others:
                        dst = w if direction == "ingress" else other_w
                        for rp in rule.get("ports") or [{}]:
                            port = _port_of(rp, dst) if rp else "any port"
                            rules.add((direction, w.name, other, port))
    ours: set[str] = {w.name for w in workloads}
    flows: set[Flow] = set()

    def side(direction: str, me: str, other: str, port: str) -> bool:
        if me not in ours or me not in isolated[direction]:
            return True
        return any(d == direction and m == me and o == other and _port_match(p, port) for d, m, o, p in rules)

    for direction, me, other, port in rules:
        source, target = (other, me) if direction == "ingress" else (me, other)
        back = "egress" if direction == "ingress" else "ingress"
        if side(back, other, me, port):
            flows.add(Flow(source, target, port))
    for name in sorted(ours):
        if name not in isolated["ingress"]:
            flows.add(Flow("anyone", name, "any port (ingress not isolated)"))
        if name not in isolated["egress"]:
            flows.add(Flow(name, "anyone", "any port (egress not isolated)"))
    return _collapse(flows, ours)


def _collapse(flows: set[Flow], ours: set[str]) -> set[Flow]:
    """A flow every one of our workloads has to the same target outside them and port is shown once, from
    `every pod`."""
    if len(ours) < 2:
        return flows
    out = set(flows)
    for f in flows:
        if (
            f.source in ours
            and f.target not in ours
            and all(Flow(w, f.target, f.port) in flows for w in ours)
        ):
            out -= {Flow(w, f.target, f.port) for w in ours}
            out.add(Flow(EVERY_POD, f.target, f.port))
    return out
