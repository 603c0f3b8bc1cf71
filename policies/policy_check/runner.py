"""The check: both engines over every folder of dist/, waivers applied, one list of findings back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy_check import (
    allowlist,
    cluster_policies,
    crd_schema,
    declared,
    dist,
    engines,
    kyverno,
    origin,
    rule_docs,
    waivers,
)
from policy_check.findings import Finding

# Rules checked in Python (not by an engine).
CLUSTER_POLICIES_RULE = "cluster-policies-in-sync"
CRD_RULE = crd_schema.RULE
WAIVER_RULE = "waivers"


@dataclass
class Outcome:
    findings: list[Finding] = field(default_factory=list)  # violations, waiver problems included
    waived: list[Finding] = field(default_factory=list)
    rules: dict[str, list[str]] = field(default_factory=dict)  # folder -> rule ids checked there


def rule_ids(tools: engines.Tools) -> list[str]:
    ids = set(engines.kyverno_rule_names(tools.kyverno_policies))
    for rego in tools.conftest_policies.rglob("*.rego"):
        if not rego.name.endswith("_test.rego") and rego.parent.name != "lib":
            custom = rule_docs.rego_metadata(rego).get("custom") or {}
            ids.add(str(custom.get("id") or rego.stem.replace("_", "-")))
    ids.discard("deny")
    ids.add(CRD_RULE)
    ids.add(kyverno.SCOPE_RULE)
    ids.add(allowlist.RULE)
    return sorted(ids)


def run(
    *,
    repo_root: Path,
    dist_dir: Path,
    tools: engines.Tools,
    waiver_file: Path,
    only_env: str | None,
    specs: dict[str, dict[str, Any]] | None = None,
    today: dt.date | None = None,
    overlays: Path | None = None,
) -> Outcome:
    """`overlays` (default: the repository's) is where findings are traced back to a spec line."""
    today = today or dt.date.today()
    origins = origin.Origins(overlays or repo_root / "overlays", repo_root)
    all_waivers = waivers.load(waiver_file)
    live = [w for w in all_waivers if not w.expired(today)]
    outcome = Outcome()
    envs = dist.environments(dist_dir)
    if only_env is not None:
        if only_env not in envs:
            raise dist.DistError(
                f"no environment {only_env!r} in {dist_dir}; found: {', '.join(envs) or 'none'}"
            )
        envs = [only_env]
    folders = [f for f in [*envs, dist.ARGOCD] if (dist_dir / f).is_dir()]
    dist_paths = sorted(f"dist/{p.name}" for p in dist_dir.iterdir() if p.is_dir())
    # what overlays/ declares, per folder (read from the YAML, not by the generator)
    specs = specs if specs is not None else declared.for_environments(repo_root / "overlays", envs)
    ids = rule_ids(tools)

    schemas = crd_schema.Schemas(repo_root)
    with tempfile.TemporaryDirectory(prefix="policy-check-") as tmp:
        loaded = {name: dist.load_folder(dist_dir, name) for name in folders}
        # one Kyverno process for every environment, started first: it is the slowest engine
        on_envs = [loaded[n] for n in folders if n != dist.ARGOCD]
        kyv = kyverno.start(tools.kyverno, tools.kyverno_policies, on_envs, live, Path(tmp))
        procs = []
        for name in folders:
            folder = loaded[name]
            mine = [w for w in live if w.environment == name]
            data_file = Path(tmp) / f"{name}-data.json"
            spec = specs.get(name)
            data = {
                "environment": spec["environment"] if spec else name,
                "spec": spec,
                "files": folder.files,
                "dist_paths": dist_paths,
                "waivers": waivers.conftest_data(mine),
            }
            data_file.write_text(json.dumps({"mlplatform": data}, sort_keys=True), encoding="utf-8")
            con = engines.start_conftest(tools, folder, data_file)
            procs.append((name, folder, mine, con))
        # the engines run in their own processes meanwhile
        schema_found = {
            name: crd_schema.findings(schemas, name, folder.documents) for name, folder, *_ in procs
        }
        kyverno_found: dict[str, list[Finding]] = {}
        for f in kyv.findings():
            kyverno_found.setdefault(f.environment, []).append(f)
        for name, folder, mine, con in procs:
            found = engines.conftest_findings(con, folder, name) + schema_found[name]
            found += kyverno_found.get(name, [])
            for f in (_located(f, folder, origins) for f in found):
                if not f.waiver:
                    outcome.findings.append(f)
                    continue
                w = _matching_waiver(mine, f)
                outcome.waived.append(_with_waiver(f, w.id if w else f.waiver))
            outcome.rules[name] = ids

    if (dist_dir / dist.CLUSTER_POLICIES).is_dir() and only_env is None:
        outcome.findings += _cluster_policies(dist_dir / dist.CLUSTER_POLICIES, tools.kyverno_policies, live)
        shipped = dist.load_folder(dist_dir, dist.CLUSTER_POLICIES)
        found = crd_schema.findings(schemas, dist.CLUSTER_POLICIES, shipped.documents)
        outcome.findings += [_located(f, shipped, origins) for f in found]
        outcome.findings += allowlist.admission_drift(tools.kyverno_policies, specs, complete=True)
        outcome.rules[dist.CLUSTER_POLICIES] = [allowlist.RULE, CLUSTER_POLICIES_RULE, CRD_RULE]
    # Each rule has one engine, so a waiver is used when its engine reports the finding waived. (Kyverno
    # reports "skip" whenever an exception matches, even where the rule would pass.)
    used = {f.waiver for f in outcome.waived}
    outcome.findings += _waiver_problems(all_waivers, used, today, envs, ids)
    outcome.rules.setdefault("waivers", [WAIVER_RULE])
    outcome.findings.sort()
    outcome.waived.sort()
    return outcome


def _located(f: Finding, folder: dist.Folder, origins: origin.Origins) -> Finding:
    """The finding with its lines in dist/ (the offending field's where the engine names one, else the
    object's first to last) and the spec field that produced it."""
    key = (f.kind, f.namespace, f.name)
    node = folder.nodes.get(key) if f.file else None
    if node is None:
        return f
    line, end_line = folder.lines[key], folder.end_lines[key]
    at_field = dist.field_line(node, f.field) if f.field else 0
    if at_field:
        line, end_line = at_field, 0
    labels = folder.labels.get(key) or {}
    cause = origins.of(folder.name, f.kind, f.name, labels, f.rule, f.field)
    return dataclasses.replace(f, line=line, end_line=end_line, origin=cause)


def _matching_waiver(mine: list[waivers.Waiver], f: Finding) -> waivers.Waiver | None:
    for w in mine:
        if (w.rule, w.kind, w.namespace, w.name) == (f.rule, f.kind, f.namespace, f.name):
            return w
    return None


def _with_waiver(f: Finding, waiver_id: str) -> Finding:
    return Finding(**{**f.__dict__, "waiver": waiver_id})


def _waiver_problems(
    all_waivers: list[waivers.Waiver], used: set[str], today: dt.date, envs: list[str], ids: list[str]
) -> list[Finding]:
    problems = []
    for w in all_waivers:
        if w.environment not in envs and w.environment != dist.ARGOCD:
            continue
        if w.expired(today):
            msg = f"waiver {w.describe()} expired on {w.expires.isoformat()}"
            msg += ". Fix: fix the violation, or renew the waiver after review"
        elif w.rule not in ids:
            msg = f"waiver {w.describe()} names an unknown rule {w.rule!r}; known: {', '.join(ids)}"
            msg += ". Fix: name the rule the finding reports, or remove the waiver"
        elif w.id not in used:
            msg = f"waiver {w.describe()} matches no violation. Fix: remove it from policies/exceptions.yaml"
        else:
            continue
        problems.append(
            Finding(
                w.environment,
                WAIVER_RULE,
                "policies/exceptions.yaml",
                w.kind,
                w.namespace,
                w.name,
                "check",
                msg,
            )
        )
    return problems


def _cluster_policies(folder: Path, sources: list[Path], live: list[waivers.Waiver]) -> list[Finding]:
    return [
        Finding(dist.CLUSTER_POLICIES, CLUSTER_POLICIES_RULE, name, "", "", "", "check", msg)
        for name, msg in cluster_policies.drift(folder, sources, live)
    ]
