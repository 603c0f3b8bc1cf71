"""The check: both engines over every folder of dist/, waivers applied, one list of findings back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplatform import cluster_policies, waivers
from policy_check import (
    allowlist,
    crd_schema,
    declared,
    dist,
    engines,
    kyverno,
    origin,
    rule_docs,
    signing,
)
from policy_check.cache import Cache
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
    jobs: int | None = None,
    cache: Cache | None = None,
    overlays: Path | None = None,
) -> Outcome:
    """The check. `jobs`: engine processes at once (default: the CPUs this process may use); `cache`: where
    the engines' findings for unchanged folders are kept (default: none, every folder is checked);
    `overlays` (default: the repository's) is where findings are traced back to a spec line."""
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
        loaded, found_in = _engine_findings(
            dist_dir, folders, specs, dist_paths, live, tools, schemas, Path(tmp), jobs or cpu_count(), cache
        )
        for name in folders:
            folder = loaded[name]
            mine = [w for w in live if w.environment == name]
            for f in (_located(f, folder, origins) for f in found_in[name]):
                if not f.waiver:
                    outcome.findings.append(f)
                    continue
                w = _matching_waiver(mine, f)
                outcome.waived.append(_with_waiver(f, w.id if w else f.waiver))
            outcome.rules[name] = ids

    if (dist_dir / dist.CLUSTER_POLICIES).is_dir() and only_env is None:
        outcome.findings += _cluster_policies(
            overlays or repo_root / "overlays", dist_dir / dist.CLUSTER_POLICIES, tools.kyverno_policies, live
        )
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


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def conftest_data(
    name: str,
    folder: dist.Folder,
    spec: dict[str, Any] | None,
    dist_paths: list[str],
    mine: list[waivers.Waiver],
) -> dict[str, Any]:
    """What conftest gets with --data: the declared spec, the folder's files, dist/'s folders, its waivers."""
    data = {
        "environment": spec["environment"] if spec else name,
        "spec": spec,
        "files": folder.files,
        "dist_paths": dist_paths,
        "waivers": waivers.conftest_data(mine),
    }
    return {"mlplatform": data}


def _engine_findings(
    dist_dir: Path,
    folders: list[str],
    specs: dict[str, dict[str, Any]],
    dist_paths: list[str],
    live: list[waivers.Waiver],
    tools: engines.Tools,
    schemas: crd_schema.Schemas,
    tmp: Path,
    jobs: int,
    cache: Cache | None,
) -> tuple[dict[str, dist.Folder], dict[str, list[Finding]]]:
    """Every folder, and its findings from Kyverno, conftest and the CRD schemas (waivers marked, not yet
    applied).

    A pipeline: each folder is read in this process, then its engines start (at most `jobs` engine processes
    at once: Kyverno with all resources of the folder in one invocation, conftest once) while the next folder
    is read, and the CRD schema check runs here once every folder is read. A folder the cache knows (same
    files, data, policies, gate and tools) is taken from it, and its objects are read only where it has
    findings to locate."""
    loaded: dict[str, dist.Folder] = {}
    found: dict[str, list[Finding]] = {}
    keys: dict[str, str] = {}
    todo: list[str] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        kyv = []
        con = {}
        for name in folders:
            folder = loaded[name] = dist.list_folder(dist_dir, name)
            mine = [w for w in live if w.environment == name]
            data = conftest_data(name, folder, specs.get(name), dist_paths, mine)
            if cache is not None:
                keys[name] = cache.key(folder.path, folder.files, [name, data, [repr(w) for w in mine]])
                hit = cache.get(keys[name])
                if hit is not None:
                    found[name] = hit
                    if hit:  # their lines and the spec fields behind them are read from the objects
                        dist.read_objects(folder)
                    continue
            dist.read_objects(folder)
            todo.append(name)
            if name != dist.ARGOCD:
                kyv.append(
                    pool.submit(
                        lambda f: kyverno.start(
                            tools.kyverno, tools.kyverno_policies, [f], live, _mkdir(tmp / f"k-{f.name}")
                        ).findings(),
                        folder,
                    )
                )
            data_file = tmp / f"{name}-data.json"
            data_file.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
            con[name] = pool.submit(
                lambda f, d: engines.conftest_findings(engines.start_conftest(tools, f, d), f, f.name),
                folder,
                data_file,
            )
        # the engines run in their own processes meanwhile
        for name in todo:
            found[name] = crd_schema.findings(schemas, name, loaded[name].documents)
        for future in kyv:
            for f in future.result():
                if f.environment in con:  # (a result for an object no folder holds names no folder)
                    found[f.environment].append(f)
        for name in todo:
            found[name] = con[name].result() + found[name]
    if cache is not None:
        for name in todo:
            cache.put(keys[name], found[name])
    return loaded, found


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


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


def _cluster_policies(
    overlays: Path, folder: Path, sources: list[Path], live: list[waivers.Waiver]
) -> list[Finding]:
    found = cluster_policies.drift(folder, sources, live, generated=(signing.POLICY_FILE,))
    found += signing.problems(overlays, folder)
    return [
        Finding(dist.CLUSTER_POLICIES, CLUSTER_POLICIES_RULE, name, "", "", "", "check", msg)
        for name, msg in found
    ]
