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
    every = envs = dist.environments(dist_dir)
    if only_env is not None:
        # an environment's name (all its clusters), or one cluster's folder <env>/<cluster>
        envs = [e for e in every if only_env in (e, dist.environment_of(e))]
        if not envs:
            raise dist.DistError(
                f"no environment {only_env!r} in {dist_dir}; found: {', '.join(every) or 'none'}"
            )
    folders = [*envs, *dist.argocd_folders(dist_dir)]
    # every folder an Application may point at: dist/'s own, and each cluster's of an environment on several
    dist_paths = sorted(
        {f"dist/{p.name}" for p in dist_dir.iterdir() if p.is_dir()}
        | {f"dist/{f}" for f in [*every, *dist.argocd_folders(dist_dir)]}
    )
    # this repository, as Argo CD reads it (a source from anywhere else is an add-on's upstream release)
    repo_url = declared.repo_url(overlays or repo_root / "overlays")
    # what overlays/ declares, per folder (read from the YAML, not by the generator)
    specs = specs if specs is not None else declared.for_environments(repo_root / "overlays", envs)
    ids = rule_ids(tools)

    schemas = crd_schema.Schemas(repo_root)
    with tempfile.TemporaryDirectory(prefix="policy-check-") as tmp:
        found_in = _engine_findings(
            dist_dir,
            folders,
            specs,
            (dist_paths, repo_url),
            live,
            tools,
            schemas,
            Path(tmp),
            jobs or cpu_count(),
            cache,
        )
        for name in folders:
            mine = [w for w in live if w.environment == dist.environment_of(name)]
            here = found_in[name]
            for f in (_with_origin(f, name, here.labels, origins) for f in here.findings):
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
        located = Located.of(found, shipped)
        outcome.findings += [_with_origin(f, shipped.name, located.labels, origins) for f in located.findings]
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
    repository: tuple[list[str], str],
    mine: list[waivers.Waiver],
) -> dict[str, Any]:
    """What conftest gets with --data: the declared spec, the folder's files, dist/'s folders and this
    repository's URL, its waivers."""
    dist_paths, repo_url = repository
    data = {
        "environment": spec["environment"] if spec else name,
        "spec": spec,
        "files": folder.files,
        "dist_paths": dist_paths,
        "repo_url": repo_url,
        "waivers": waivers.conftest_data(mine),
    }
    return {"mlplatform": data}


def _engine_findings(
    dist_dir: Path,
    folders: list[str],
    specs: dict[str, dict[str, Any]],
    repository: tuple[list[str], str],  # dist/'s folders, this repository's URL
    live: list[waivers.Waiver],
    tools: engines.Tools,
    schemas: crd_schema.Schemas,
    tmp: Path,
    jobs: int,
    cache: Cache | None,
) -> dict[str, Located]:
    """Every folder's findings from Kyverno, conftest and the CRD schemas, located in its files (waivers
    marked, not yet applied).

    A pipeline: each folder is read in this process, then its engines start (at most `jobs` engine processes
    at once: Kyverno with all resources of the folder in one invocation, conftest once) while the next folder
    is read, and the CRD schema check runs here once every folder is read. A folder the cache knows (same
    files, data, policies, gate and tools) is taken from it, located as it was, without reading its
    objects."""
    loaded: dict[str, dist.Folder] = {}
    found: dict[str, list[Finding]] = {}
    done: dict[str, Located] = {}
    keys: dict[str, str] = {}
    todo: list[str] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        kyv = []
        con = {}
        for name in folders:
            folder = loaded[name] = dist.list_folder(dist_dir, name)
            mine = [w for w in live if w.environment == dist.environment_of(name)]
            data = conftest_data(name, folder, specs.get(name), repository, mine)
            if cache is not None:
                keys[name] = cache.key(folder.path, folder.files, [name, data, [repr(w) for w in mine]])
                hit = cache.get(keys[name])
                if hit is not None:
                    done[name] = Located(*hit)
                    continue
            dist.read_objects(folder)
            todo.append(name)
            if dist.environment_of(name) not in dist.NOT_ENVIRONMENTS:  # Kyverno judges workloads only
                kyv.append(
                    pool.submit(
                        lambda f: kyverno.start(
                            tools.kyverno,
                            tools.kyverno_policies,
                            [f],
                            live,
                            _mkdir(tmp / f"k-{_flat(f.name)}"),
                        ).findings(),
                        folder,
                    )
                )
            data_file = tmp / f"{_flat(name)}-data.json"
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
            done[name] = Located.of(con[name].result() + found[name], loaded[name])
    if cache is not None:
        for name in todo:
            cache.put(keys[name], done[name].findings, done[name].labels)
    return done


def _flat(folder: str) -> str:
    """A folder's name as one file name (<env>/<cluster> -> <env>--<cluster>)."""
    return folder.replace("/", "--")


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


@dataclasses.dataclass(frozen=True)
class Located:
    """A folder's findings with their lines in its files, and the labels of each object they name (what
    tracing a finding back to the spec needs): all a cache entry holds, so a hit reads no object."""

    findings: list[Finding]
    labels: dict[str, dict[str, str]]  # object_id(finding) -> the labels of the object it is on

    @classmethod
    def of(cls, found: list[Finding], folder: dist.Folder) -> Located:
        """Each finding with its lines (the offending field's where the engine names one, else the object's
        first to last); findings on no object of the folder as they came."""
        findings, labels = [], {}
        for f in found:
            key = (f.kind, f.namespace, f.name)
            node = folder.nodes.get(key) if f.file else None
            if node is None:
                findings.append(f)
                continue
            line, end_line = folder.lines[key], folder.end_lines[key]
            at_field = dist.field_line(node, f.field) if f.field else 0
            if at_field:
                line, end_line = at_field, 0
            findings.append(dataclasses.replace(f, line=line, end_line=end_line))
            labels[object_id(f)] = folder.labels.get(key) or {}
        return cls(findings, labels)


def object_id(f: Finding) -> str:
    return f"{f.kind}/{f.namespace}/{f.name}"


def _with_origin(
    f: Finding, folder: str, labels: dict[str, dict[str, str]], origins: origin.Origins
) -> Finding:
    """The located finding with the spec field that produced it."""
    if object_id(f) not in labels:
        return f
    cause = origins.of(dist.environment_of(folder), f.kind, f.name, labels[object_id(f)], f.rule, f.field)
    return dataclasses.replace(f, origin=cause)


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
        if w.environment not in {dist.environment_of(e) for e in envs} and w.environment != dist.ARGOCD:
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
