"""dist/cluster-policies/: the Kyverno policies the clusters enforce, and one PolicyException per live waiver.

The policies are byte copies of `policies/kyverno/<name>/<name>.yaml`, so admission enforces exactly what the
pull request checked. Each must select only the namespaces the platform manages (label
`mlplatform.io/managed: "true"`) and name every protected namespace (system, Argo CD, peers such as the
ingress controller) in a `kubernetes.io/metadata.name NotIn` expression, so that even a mislabelled one is
never touched. Each live waiver whose rule is a Kyverno policy becomes one PolicyException scoped to its one
object (and the pods its controller creates) and that one policy: `policies.kyverno.io/v1` for a
ValidatingPolicy, `kyverno.io/v2` for the ClusterPolicy (the only kind of exception Kyverno v1.19.1 applies to
one). Expired waivers are left out; they also fail the check.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlplatform import waivers
from mlplatform.names import MANAGED_NAMESPACE, MANAGED_NAMESPACE_VALUE, NAMESPACE_NAME, POLICIES_NAMESPACE

SOURCE_DIR = Path("policies/kyverno")
WAIVER_FILE = Path("policies/exceptions.yaml")
VALIDATING_POLICY = "ValidatingPolicy"
IMAGE_VALIDATING_POLICY = "ImageValidatingPolicy"  # verify-image-signatures, rendered from the spec
CLUSTER_POLICY = "ClusterPolicy"
EXCEPTION_PREFIX = "policyexception-"
#: Kinds whose pods a waiver of the controller also covers: controller -> the kind that owns its pods.
POD_OWNER = {"Deployment": "ReplicaSet", "CronJob": "Job"}


class ClusterPolicyError(ValueError):
    """A Kyverno policy is malformed or not safe to install."""


@dataclass(frozen=True)
class Policy:
    name: str
    kind: str
    rules: tuple[str, ...]  # ClusterPolicy rule names; a ValidatingPolicy is one rule, named like itself
    path: Path
    doc: dict[str, Any]


def sources(repo_root: Path) -> list[Path]:
    """Every `policies/kyverno/<name>/<name>.yaml`, sorted by name: what the clusters enforce."""
    root = repo_root / SOURCE_DIR
    if not root.is_dir():
        return []
    return [d / f"{d.name}.yaml" for d in sorted(root.iterdir()) if (d / f"{d.name}.yaml").is_file()]


def load(paths: list[Path]) -> dict[str, Policy]:
    policies: dict[str, Policy] = {}
    for path in paths:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name")
        if name != path.stem:
            raise ClusterPolicyError(
                f"{path}: metadata.name is {name!r}; allowed: {path.stem!r} (the file's name)"
            )
        if kind == CLUSTER_POLICY:
            rules = tuple(str(r["name"]) for r in doc["spec"]["rules"])
        elif kind in (VALIDATING_POLICY, IMAGE_VALIDATING_POLICY):
            rules = (name,)
        else:
            allowed = f"{VALIDATING_POLICY}, {IMAGE_VALIDATING_POLICY}, {CLUSTER_POLICY}"
            raise ClusterPolicyError(f"{path}: kind {kind!r}; allowed: {allowed}")
        policies[name] = Policy(name=name, kind=kind, rules=rules, path=path, doc=doc)
    return policies


def selectors(policy: Policy) -> list[dict[str, Any]]:
    """The namespace selector of each match of the policy ({} where one is missing)."""
    if policy.kind in (VALIDATING_POLICY, IMAGE_VALIDATING_POLICY):
        return [(policy.doc["spec"].get("matchConstraints") or {}).get("namespaceSelector") or {}]
    found = []
    for rule in policy.doc["spec"]["rules"]:
        match = rule.get("match") or {}
        for entry in [*(match.get("any") or []), *(match.get("all") or [])] or [match]:
            found.append((entry.get("resources") or {}).get("namespaceSelector") or {})
    return found


def scope_problems(policy: Policy, protected: set[str]) -> list[str]:
    """Why the policy could touch a namespace the platform does not manage (empty when it cannot)."""
    problems = []
    for selector in selectors(policy):
        labels = selector.get("matchLabels") or {}
        if labels.get(MANAGED_NAMESPACE) != MANAGED_NAMESPACE_VALUE:
            problems.append(
                f"{policy.path}: a namespaceSelector lacks matchLabels {MANAGED_NAMESPACE}: "
                f'"{MANAGED_NAMESPACE_VALUE}"; allowed: only namespaces the platform manages'
            )
        excluded: set[str] = set()
        for expr in selector.get("matchExpressions") or []:
            if expr.get("key") == NAMESPACE_NAME and expr.get("operator") == "NotIn":
                excluded |= set(expr.get("values") or [])
        missing = sorted(protected - excluded)
        if missing:
            problems.append(
                f"{policy.path}: a namespaceSelector does not exclude {', '.join(missing)}; "
                f"allowed: a matchExpressions entry {NAMESPACE_NAME} NotIn every protected namespace "
                f"({', '.join(sorted(protected))})"
            )
    return problems


def exception_name(w: waivers.Waiver) -> str:
    raw = f"{w.environment}-{w.kind}-{w.namespace}-{w.name}-{w.rule}".lower()
    return re.sub(r"[^a-z0-9]+", "-", raw).strip("-")[:253]


def _annotations(w: waivers.Waiver) -> dict[str, str]:
    return {
        "mlplatform.io/waiver-reason": w.reason,
        "mlplatform.io/waiver-owner": w.owner,
        "mlplatform.io/waiver-expires": w.expires.isoformat(),
        "mlplatform.io/waiver-source": str(WAIVER_FILE),
    }


def _cel_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _cel_condition(w: waivers.Waiver) -> str:
    """True for the waived object and for the objects its controller creates (matched by owner)."""
    this = f"object.kind == {_cel_string(w.kind)} && object.metadata.name == {_cel_string(w.name)}"
    owners = f"o.kind == {_cel_string(w.kind)} && o.name == {_cel_string(w.name)}"
    if w.kind in POD_OWNER:
        pattern = "^" + re.escape(w.name).replace("\\", "\\\\") + "-[a-z0-9]+$"
        owners = f"({owners}) || (o.kind == {_cel_string(POD_OWNER[w.kind])} && o.name.matches('{pattern}'))"
    expr = f"({this}) || object.metadata.?ownerReferences.orValue([]).exists(o, {owners})"
    if w.namespace:
        expr = f"request.namespace == {_cel_string(w.namespace)} && ({expr})"
    return expr


def _legacy_conditions(w: waivers.Waiver) -> list[dict[str, Any]]:
    """JMESPath conditions of a kyverno.io/v2 exception: the object, or owned by it (or by its ReplicaSet)."""
    owner_names = "request.object.metadata.ownerReferences[?kind=='{kind}'].name || `[]`"
    conds: list[dict[str, Any]] = [
        {
            "key": "{{ request.object.kind }}/{{ request.object.metadata.name }}",
            "operator": "Equals",
            "value": f"{w.kind}/{w.name}",
        },
        {"key": "{{ " + owner_names.format(kind=w.kind) + " }}", "operator": "AnyIn", "value": [w.name]},
    ]
    if w.kind in POD_OWNER:
        pattern = "^" + re.escape(w.name) + "-[a-z0-9]+$"
        inner = owner_names.format(kind=POD_OWNER[w.kind])
        conds.append(
            {
                "key": "{{ regex_match('" + pattern + "', join(',', " + inner + ")) }}",
                "operator": "Equals",
                "value": True,
            }
        )
    return conds


def exception(w: waivers.Waiver, policy: Policy) -> dict[str, Any]:
    meta = {"name": exception_name(w), "namespace": POLICIES_NAMESPACE, "annotations": _annotations(w)}
    if policy.kind == VALIDATING_POLICY:
        return {
            "apiVersion": "policies.kyverno.io/v1",
            "kind": "PolicyException",
            "metadata": meta,
            "spec": {
                "policyRefs": [{"name": policy.name, "kind": VALIDATING_POLICY}],
                "matchConditions": [{"name": "the-waived-object", "expression": _cel_condition(w)}],
            },
        }
    names = sorted({n for r in policy.rules for n in (r, f"autogen-{r}", f"autogen-cronjob-{r}")})
    kinds = sorted({w.kind, "Pod", *([POD_OWNER[w.kind]] if w.kind in POD_OWNER else [])})
    resources: dict[str, Any] = {"kinds": kinds}
    if w.namespace:
        resources["namespaces"] = [w.namespace]
    return {
        "apiVersion": "kyverno.io/v2",
        "kind": "PolicyException",
        "metadata": meta,
        "spec": {
            "exceptions": [{"policyName": policy.name, "ruleNames": names}],
            "match": {"any": [{"resources": resources}]},
            "conditions": {"any": _legacy_conditions(w)},
        },
    }


def exceptions(live: list[waivers.Waiver], policies: dict[str, Policy]) -> dict[str, str]:
    """File name -> YAML of one PolicyException, for each live waiver of a Kyverno policy."""
    files: dict[str, str] = {}
    for w in live:
        if w.rule in policies:
            doc = exception(w, policies[w.rule])
            files[f"{EXCEPTION_PREFIX}{doc['metadata']['name']}.yaml"] = yaml.safe_dump(doc, sort_keys=True)
    return dict(sorted(files.items()))


def render(repo_root: Path, *, protected: set[str], today: dt.date) -> dict[str, str | bytes]:
    """Everything dist/cluster-policies/ holds. Raises ClusterPolicyError (or WaiverError) on bad input."""
    paths = sources(repo_root)
    if not paths:
        return {}  # no policies, nothing to except
    policies = load(paths)
    problems = [p for policy in policies.values() for p in scope_problems(policy, protected)]
    if problems:
        raise ClusterPolicyError(problems[0] if len(problems) == 1 else "\n".join(problems))
    live = [w for w in waivers.load(repo_root / WAIVER_FILE) if not w.expired(today)]
    files: dict[str, str | bytes] = {p.name: p.read_bytes() for p in paths}
    files.update(exceptions(live, policies))
    return files


def drift(
    shipped: Path, paths: list[Path], live: list[waivers.Waiver], generated: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """(file, problem) for each file of dist/cluster-policies/ that differs from what synth would write.
    `generated` names the files rendered from the spec rather than copied (checked by policy_check.signing
    and dist-drift): each must be there."""
    expected: dict[str, bytes] = {p.name: p.read_bytes() for p in paths}
    expected |= {name: text.encode() for name, text in exceptions(live, load(paths)).items()}
    actual = {p.name: p for p in shipped.iterdir() if p.is_file()}
    problems = [
        (name, f"{name} (rendered from the spec) is missing from dist/cluster-policies")
        for name in generated
        if name not in actual
    ]
    actual = {name: path for name, path in actual.items() if name not in generated}
    for name in sorted(expected.keys() | actual.keys()):
        if name not in actual:
            what = "a PolicyException of a live waiver" if name.startswith(EXCEPTION_PREFIX) else "a policy"
            problems.append((name, f"{name} ({what}) is missing from dist/cluster-policies"))
        elif name not in expected:
            why = (
                "an expired or removed waiver's exception"
                if name.startswith(EXCEPTION_PREFIX)
                else "no source"
            )
            problems.append((name, f"{name} in dist/cluster-policies has {why}"))
        elif actual[name].read_bytes() != expected[name]:
            problems.append((name, f"{name} differs from what synth writes"))
    return [
        (f, f"{m}; the clusters would enforce something else than this check. Fix: run make synth")
        for f, m in problems
    ]
