"""The check: both engines over every folder of dist/, waivers applied, one list of findings back."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy_check import cluster_policies, dist, engines, kyverno, waivers
from policy_check.findings import Finding

# Rules checked in Python (not by an engine).
CLUSTER_POLICIES_RULE = "cluster-policies-in-sync"
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
            ids.add(rego.stem.replace("_", "-"))
    ids.discard("deny")
    ids.add(kyverno.SCOPE_RULE)
    return sorted(ids)


def run(
    *,
    repo_root: Path,
    dist_dir: Path,
    tools: engines.Tools,
    waiver_file: Path,
    only_env: str | None,
    declared_flows: dict[str, list[dict[str, Any]]] | None = None,
    today: dt.date | None = None,
) -> Outcome:
    today = today or dt.date.today()
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
    flows = declared_flows if declared_flows is not None else declared_flows_for(repo_root, envs)
    ids = rule_ids(tools)

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
            data = {
                "environment": name,
                "declared_flows": flows.get(name, []),
                "files": folder.files,
                "dist_paths": dist_paths,
                "waivers": waivers.conftest_data(mine),
            }
            data_file.write_text(json.dumps({"mlplatform": data}, sort_keys=True), encoding="utf-8")
            con = engines.start_conftest(tools, folder, data_file)
            procs.append((name, folder, mine, con))
        kyverno_found: dict[str, list[Finding]] = {}
        for f in kyv.findings():
            kyverno_found.setdefault(f.environment, []).append(f)
        for name, folder, mine, con in procs:
            found = engines.conftest_findings(con, folder, name)
            found += kyverno_found.get(name, [])
            for f in found:
                if not f.waiver:
                    outcome.findings.append(f)
                    continue
                w = _matching_waiver(mine, f)
                outcome.waived.append(_with_waiver(f, w.id if w else f.waiver))
            outcome.rules[name] = ids

    if (dist_dir / dist.CLUSTER_POLICIES).is_dir() and only_env is None:
        outcome.findings += _cluster_policies(dist_dir / dist.CLUSTER_POLICIES, tools.kyverno_policies, live)
        outcome.rules[dist.CLUSTER_POLICIES] = [CLUSTER_POLICIES_RULE]
    # each engine reports a waived finding only for a real violation (Kyverno's are matched to waivers by
    # object), so a waiver is used when some finding is waived by it
    used = {f.waiver for f in outcome.waived}
    outcome.findings += _waiver_problems(all_waivers, used, today, envs, ids)
    outcome.rules.setdefault("waivers", [WAIVER_RULE])
    outcome.findings.sort()
    outcome.waived.sort()
    return outcome


def declared_flows_for(repo_root: Path, envs: list[str]) -> dict[str, list[dict[str, Any]]]:
    from mlplatform import api  # the generator's stable API: the same code renders the NetworkPolicies

    known = set(api.list_environments(repo_root))
    return {env: api.declared_network_flows(env, repo_root=repo_root) for env in envs if env in known}


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
