"""The objects of a dist/ folder, and what changed between two versions of one, in domain terms.

A changed object is described by facets a reviewer reads (an image or digest, replicas and autoscaling bounds,
what an autoscaler scales on, requests and limits, env and config keys, NetworkPolicy rules, routes and
weights, Argo CD sync options, quota values); env values and ConfigMap/Secret data are never shown, only their
keys. Whatever else changed is listed by field path, without values.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Key = tuple[str, str, str]  # kind, namespace, name
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def load(files: dict[str, str]) -> dict[Key, dict[str, Any]]:
    """(kind, namespace, name) -> object, for every manifest in a folder."""
    objects: dict[Key, dict[str, Any]] = {}
    for name in sorted(files):
        if not name.endswith((".yaml", ".yml", ".json")):
            continue
        for doc in yaml.load_all(files[name], Loader=_LOADER):
            if isinstance(doc, dict) and doc.get("kind"):
                meta = doc.get("metadata") or {}
                objects[(str(doc["kind"]), str(meta.get("namespace", "")), str(meta.get("name", "")))] = doc
    return objects


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec") or {}
    if obj.get("kind") in POD_KINDS:
        return ((spec.get("template") or {}).get("spec")) or {}
    if obj.get("kind") == "CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    if obj.get("kind") == "InferenceService":
        return spec.get("predictor") or {}
    if obj.get("kind") == "Pod":
        return spec
    return None


def short(image: str) -> str:
    """An image reference with its digest cut to 12 hex digits."""
    return re.sub(r"sha256:([0-9a-f]{12})[0-9a-f]{52}", r"sha256:\1", image)


def _resources(res: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((res or {}).items())) or "none"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _peer(p: dict[str, Any]) -> str:
    if "ipBlock" in p:
        block = p["ipBlock"]
        rest = f" except {','.join(block['except'])}" if block.get("except") else ""
        return f"{block.get('cidr')}{rest}"
    parts = []
    if "namespaceSelector" in p:
        parts.append(f"ns {selector(p['namespaceSelector'])}")
    if "podSelector" in p or "namespaceSelector" not in p:
        parts.append(f"pods {selector(p.get('podSelector') or {})}")
    return " ".join(parts)


def selector(sel: dict[str, Any]) -> str:
    terms = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        terms.append(
            f"{e.get('key')} {e.get('operator')} {','.join(map(str, e.get('values') or []))}".strip()
        )
    return "{" + ", ".join(terms) + "}" if terms else "{all}"


def _ports(ports: list[dict[str, Any]] | None) -> str:
    if not ports:
        return "any port"
    out = []
    for p in ports:
        end = f"-{p['endPort']}" if p.get("endPort") else ""
        out.append(f"{p.get('protocol', 'TCP')} {p.get('port', 'any')}{end}")
    return ", ".join(out)


def network_rules(obj: dict[str, Any]) -> set[str]:
    """One line per (direction, peer, ports) of a NetworkPolicy."""
    spec = obj.get("spec") or {}
    rules = {f"applies to pods {selector(spec.get('podSelector') or {})}"}
    rules |= {f"isolates {t.lower()}" for t in spec.get("policyTypes") or []}
    for direction, key, word in (("ingress", "from", "from"), ("egress", "to", "to")):
        for rule in spec.get(direction) or []:
            for p in rule.get(key) or [None]:
                who = _peer(p) if p is not None else "anyone"
                rules.add(f"{direction} {word} {who} on {_ports(rule.get('ports'))}")
    return rules


@dataclass
class Facets:
    """What a reviewer compares: shown values, and keyed items whose values are never shown."""

    values: dict[str, str] = field(default_factory=dict)
    hidden: dict[str, str] = field(default_factory=dict)  # "env X" -> digest of the value
    sets: dict[str, set[str]] = field(default_factory=dict)  # "NetworkPolicy rules" -> lines
    covered: tuple[str, ...] = ()  # field-path prefixes these facets explain


def facets(obj: dict[str, Any]) -> Facets:
    f = Facets()
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    covered: list[str] = []
    pod = pod_spec(obj)
    if pod is not None:
        prefix = {"InferenceService": "spec.predictor", "CronJob": "spec.jobTemplate.spec.template.spec"}.get(
            str(kind), "spec" if kind == "Pod" else "spec.template.spec"
        )
        for group in ("initContainers", "containers"):
            for c in pod.get(group) or []:
                n = c.get("name", "?")
                what = f"{'init container' if group == 'initContainers' else 'container'} {n}"
                f.values[f"{what} image"] = short(str(c.get("image", "")))
                res = c.get("resources") or {}
                f.values[f"{what} requests"] = _resources(res.get("requests") or {})
                f.values[f"{what} limits"] = _resources(res.get("limits") or {})
                for e in c.get("env") or []:
                    f.hidden[f"{what} env {e.get('name')}"] = _digest(e)
        for k in ("nodeSelector", "tolerations", "topologySpreadConstraints", "volumes"):
            if pod.get(k):
                f.hidden[f"pod {k}"] = _digest(pod[k])
        covered += [f"{prefix}.containers", f"{prefix}.initContainers", f"{prefix}.volumes"]
        covered += [f"{prefix}.{k}" for k in ("nodeSelector", "tolerations", "topologySpreadConstraints")]
        if kind == "InferenceService":
            for k in ("minReplicas", "maxReplicas"):
                if k in spec.get("predictor", {}):
                    f.values[k] = str(spec["predictor"][k])
    if kind in {"Deployment", "StatefulSet"}:
        f.values["replicas"] = str(spec.get("replicas", "set by its autoscaler"))
        covered.append("spec.replicas")
    if kind == "HorizontalPodAutoscaler":
        f.values["autoscaling"] = f"{spec.get('minReplicas', 1)}-{spec.get('maxReplicas')} replicas"
        metrics = [_hpa_metric(m) for m in spec.get("metrics") or []]
        f.values["scales on"] = ", ".join(text for text, _ in metrics)
        covered += ["spec.minReplicas", "spec.maxReplicas"]
        covered += [f"spec.metrics[{i}].{k}" for i, (_, keys) in enumerate(metrics) for k in keys]
    if kind == "ScaledObject":
        f.values["autoscaling"] = (
            f"{spec.get('minReplicaCount', 0)}-{spec.get('maxReplicaCount', 100)} replicas"
        )
        triggers = [_keda_trigger(t) for t in spec.get("triggers") or []]
        f.values["scales on"] = ", ".join(text for text, _ in triggers)
        covered += ["spec.minReplicaCount", "spec.maxReplicaCount"]
        covered += [f"spec.triggers[{i}].{k}" for i, (_, keys) in enumerate(triggers) for k in keys]
    if kind in {"ConfigMap", "Secret"}:
        for group in ("data", "binaryData", "stringData"):
            for k, v in (obj.get(group) or {}).items():
                f.hidden[f"key {k}"] = _digest(v)
            covered.append(group)
    if kind == "NetworkPolicy":
        f.sets["rule"] = network_rules(obj)
        covered += ["spec"]
    if kind == "HTTPRoute":
        for i, rule in enumerate(spec.get("rules") or []):
            backends = [
                f"{b.get('name')}:{b.get('port')} weight {b.get('weight', 1)}"
                for b in rule.get("backendRefs") or []
            ]
            f.values[f"route {i + 1} backends"] = ", ".join(backends)
        f.values["hosts"] = ", ".join(spec.get("hostnames") or [])
        covered += ["spec.rules", "spec.hostnames"]
    if kind == "Ingress":
        routes = []
        for rule in spec.get("rules") or []:
            for p in (rule.get("http") or {}).get("paths") or []:
                svc = (p.get("backend") or {}).get("service") or {}
                port = (svc.get("port") or {}).get("number") or (svc.get("port") or {}).get("name")
                routes.append(f"{rule.get('host')}{p.get('path')} -> {svc.get('name')}:{port}")
        f.values["routes"] = ", ".join(routes)
        covered += ["spec.rules"]
    if kind == "Application":
        sync = spec.get("syncPolicy") or {}
        auto = sync.get("automated")
        mode = "manual"
        if auto is not None:
            mode = "automatic" + "".join(f", {k}" for k in ("prune", "selfHeal") if auto.get(k))
        f.values["sync"] = mode
        f.values["sync options"] = ", ".join(sync.get("syncOptions") or []) or "none"
        src = spec.get("source") or {}
        f.values["source"] = f"{src.get('repoURL')} {src.get('path')} @ {src.get('targetRevision')}"
        covered += ["spec.syncPolicy", "spec.source"]
    if kind == "ResourceQuota":
        for k, v in sorted(((spec.get("hard")) or {}).items()):
            f.values[f"quota {k}"] = str(v)
        covered.append("spec.hard")
    f.covered = tuple(covered)
    return f


def _leaves(value: Any, path: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out |= _leaves(v, f"{path}.{k}" if path else str(k))
        return out or {path: "{}"}
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out |= _leaves(v, f"{path}[{i}]")
        return out or {path: "[]"}
    return {path: json.dumps(value, default=str)}


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed, one phrase each: facets first, then any other field by path (no values)."""
    a, b = facets(before), facets(after)
    out = []
    for k in sorted(a.values.keys() | b.values.keys()):
        old, new = a.values.get(k), b.values.get(k)
        if old == new:
            continue
        if old is None:
            out.append(f"{k}: added, {new}")
        elif new is None:
            out.append(f"{k}: removed (was {old})")
        else:
            out.append(f"{k}: {old} → {new}")
    for k in sorted(a.hidden.keys() | b.hidden.keys()):
        old_h, new_h = a.hidden.get(k), b.hidden.get(k)
        if old_h != new_h:
            out.append(f"{k}: {'added' if old_h is None else 'removed' if new_h is None else 'changed'}")
    for k in sorted(a.sets.keys() | b.sets.keys()):
        out += [f"{k} added: {r}" for r in sorted(b.sets.get(k, set()) - a.sets.get(k, set()))]
        out += [f"{k} removed: {r}" for r in sorted(a.sets.get(k, set()) - b.sets.get(k, set()))]
    la, lb = _leaves(before), _leaves(after)
    covered = a.covered + b.covered
    other = sorted({p for p in la.keys() | lb.keys() if la.get(p) != lb.get(p) and not _under(p, covered)})
    if other:
        shown = ", ".join(f"`{p}`" for p in other[:6])
        more = f" and {len(other) - 6} more" if len(other) > 6 else ""
        out.append(f"also changed: {shown}{more}")
    return out


def _hpa_metric(metric: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """An HPA metric as a reviewer reads it (`cpu 65% of its request`, else its type), and the fields that
    text shows."""
    resource = metric.get("resource") or {}
    target = resource.get("target") or {}
    if "averageUtilization" in target:
        text = f"{resource.get('name')} {target['averageUtilization']}% of its request"
        return text, ("type", "resource.name", "resource.target")
    return str(metric.get("type")), ("type",)


def _keda_trigger(trigger: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """A KEDA trigger as a reviewer reads it (what it reads, its target), and the fields that text shows; its
    other settings stay under `also changed`."""
    kind, meta = trigger.get("type"), trigger.get("metadata") or {}
    if kind in ("cpu", "memory") and trigger.get("metricType") == "Utilization":
        return f"{kind} {meta.get('value')}% of its request", ("type", "metricType", "metadata.value")
    if kind == "prometheus":
        text = f"prometheus `{meta.get('query')}` at {meta.get('threshold')} per pod"
        return text, ("type", "metadata.query", "metadata.threshold")
    return str(kind), ("type",)


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith((p + ".", p + "[")) for p in prefixes)


@dataclass
class FolderDiff:
    added: list[Key] = field(default_factory=list)
    removed: list[Key] = field(default_factory=list)
    changed: dict[Key, list[str]] = field(default_factory=dict)
    other_files: list[str] = field(default_factory=list)  # changed non-manifest files (ARCHITECTURE.md)


def diff(base: dict[str, str], head: dict[str, str]) -> FolderDiff:
    if base == head:
        return FolderDiff()
    a, b = load(base), load(head)
    d = FolderDiff(added=sorted(b.keys() - a.keys()), removed=sorted(a.keys() - b.keys()))
    for key in sorted(a.keys() & b.keys()):
        if a[key] != b[key]:
            d.changed[key] = changes(a[key], b[key])
    manifests = (".yaml", ".yml", ".json")
    d.other_files = sorted(
        f for f in base.keys() | head.keys() if not f.endswith(manifests) and base.get(f) != head.get(f)
    )
    return d
