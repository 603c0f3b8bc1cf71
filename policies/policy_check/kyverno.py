"""The Kyverno half of the check: one `kyverno apply` over the workloads of every environment folder.

The CLI evaluates a policy's namespaceSelector against the Namespace objects of a values file, so the check
hands it the Namespaces of dist/ as they are (plus the `kubernetes.io/metadata.name` label the apiserver
adds): a workload is checked only if its Namespace in dist/ is one the cluster policies select, as at
admission. A workload no policy looked at is itself a finding (rule `cluster-policies-scope`), so a missing
`mlplatform.io/managed` label cannot turn the gate off. Only manifests holding pods or pod controllers go to
Kyverno: the policies match nothing else, and the CLI compiles every ValidatingPolicy once per resource.
Waivers are matched here, exactly by (rule, kind, namespace, name); the clusters get them as the
PolicyExceptions of dist/cluster-policies/.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlplatform import waivers
from mlplatform.labels import MANAGED_NAMESPACE, MANAGED_NAMESPACE_VALUE
from mlplatform.names import NAMESPACE_NAME
from policy_check import dist, engines
from policy_check.findings import Finding

SCOPE_RULE = "cluster-policies-scope"
ENGINE = "kyverno"
#: Pods, the controllers Kyverno's auto-generation extends Pod policies to, and KServe's InferenceService
#: (its predictor is a pod spec: policies/kyverno/inferenceservice-pod-spec/).
POD_KINDS = frozenset(
    {
        "Pod",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "ReplicationController",
        "Job",
        "CronJob",
        "InferenceService",
    }
)
#: What the Kyverno half checks: the pod kinds, and the other kinds a Kyverno policy owns (ingress-tls,
#: restrict-service-types).
CHECKED_KINDS = POD_KINDS | {"Ingress", "Service"}
Key = tuple[str, str, str]  # kind, namespace, name


class KyvernoError(engines.EngineError):
    """The Kyverno CLI could not run or gave output we cannot read."""


def values_document(namespaces: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A CLI values file giving each Namespace its labels, with the name label the apiserver would add."""
    items = []
    for ns in sorted(namespaces, key=lambda n: str(n["metadata"]["name"])):
        name = str(ns["metadata"]["name"])
        labels = {**(ns["metadata"].get("labels") or {}), NAMESPACE_NAME: name}
        items.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    return {
        "apiVersion": "cli.kyverno.io/v1alpha1",
        "kind": "Value",
        "metadata": {"name": "values"},
        "namespaces": items,
    }


def command(kyverno: Path, policies: list[Path], resources: list[Path], values: Path) -> list[str]:
    cmd = [str(kyverno), "apply", *map(str, policies), "--values-file", str(values)]
    cmd += ["--policy-report", "--output-format", "json", "--remove-color"]
    for r in resources:
        cmd += ["--resource", str(r)]
    return cmd


def parse_report(out: str, err: str, returncode: int) -> list[dict[str, Any]]:
    start = out.find("{")  # the CLI may print warnings before the report
    if start < 0:
        if returncode == 0 and not err.strip():
            return []  # nothing matched: the CLI prints no report at all
        raise KyvernoError(f"kyverno apply gave no report (exit {returncode}): {err.strip()[-2000:]}")
    try:
        report = json.loads(out[start:])
    except json.JSONDecodeError as exc:
        raise KyvernoError(f"kyverno apply printed something that is not its JSON report: {exc}") from exc
    return list(report.get("results") or [])


@dataclass
class Batch:
    """Environment folders whose objects can share one CLI run (no (kind, namespace, name) in two of them)."""

    where: dict[Key, tuple[str, str]] = field(default_factory=dict)  # key -> (environment, file)
    resources: list[Path] = field(default_factory=list)
    namespaces: list[dict[str, Any]] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None


@dataclass
class Run:
    batches: list[Batch]
    waivers: list[waivers.Waiver]

    def findings(self) -> list[Finding]:
        found: list[Finding] = []
        for batch in self.batches:
            found += _batch_findings(batch, self.waivers)
        return found


def _folder_parts(folder: dist.Folder) -> tuple[dict[Key, str], list[Path], list[dict[str, Any]]]:
    pods = {key: file for key, file in folder.objects.items() if key[0] in CHECKED_KINDS}
    files = sorted({folder.path / f for f in pods.values()})
    namespaces = []
    for key, file in folder.objects.items():
        if key[0] == "Namespace":
            for doc in yaml.load_all(
                (folder.path / file).read_text(encoding="utf-8"), Loader=yaml.CSafeLoader
            ):
                if isinstance(doc, dict) and doc.get("kind") == "Namespace":
                    namespaces.append(doc)
    return pods, files, namespaces


def start(
    kyverno: Path, policies: list[Path], folders: list[dist.Folder], live: list[waivers.Waiver], tmp: Path
) -> Run:
    """Start the CLI (normally one process for all folders) and return at once."""
    batches: list[Batch] = []
    for folder in folders:
        pods, files, namespaces = _folder_parts(folder)
        batch = next((b for b in batches if not (b.where.keys() & pods.keys())), None)
        if batch is None:
            batch = Batch()
            batches.append(batch)
        batch.where.update({k: (folder.name, f) for k, f in pods.items()})
        batch.resources += files
        batch.namespaces += namespaces
    for i, batch in enumerate(batches):
        if not batch.resources:
            continue
        values = tmp / f"kyverno-values-{i}.yaml"
        values.write_text(yaml.safe_dump(values_document(batch.namespaces), sort_keys=True), encoding="utf-8")
        cmd = command(kyverno, policies, batch.resources, values)
        batch.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return Run(batches=batches, waivers=live)


def _batch_findings(batch: Batch, live: list[waivers.Waiver]) -> list[Finding]:
    if batch.proc is None:
        return []
    out, err = batch.proc.communicate()
    checked: set[Key] = set()
    found = []
    for result in parse_report(out, err, batch.proc.returncode):
        status = result.get("result")
        for res in result.get("resources") or []:
            key = (str(res.get("kind", "")), str(res.get("namespace", "")), str(res.get("name", "")))
            checked.add(key)
            if status not in ("fail", "error"):
                continue
            env, file = batch.where.get(key, ("", ""))
            f = Finding(
                environment=env,
                rule=str(result["policy"]),
                file=file,
                kind=key[0],
                namespace=key[1],
                name=key[2],
                engine=ENGINE,
                message=_message(str(result.get("message", "")), status),
            )
            w = next((w for w in live if _covers(w, f)), None)
            found.append(f if w is None else Finding(**{**f.__dict__, "waiver": w.id}))
    for key in sorted(batch.where.keys() - checked):
        env, file = batch.where[key]
        found.append(
            Finding(
                environment=env,
                rule=SCOPE_RULE,
                file=file,
                kind=key[0],
                namespace=key[1],
                name=key[2],
                engine=ENGINE,
                message=(
                    f"no cluster policy applies to it: its namespace {key[1] or '(none)'} is not a "
                    f"Namespace of this folder labelled {MANAGED_NAMESPACE}: "
                    f'"{MANAGED_NAMESPACE_VALUE}" (or it is a protected namespace), so '
                    "neither this check nor admission would look at its pods. Fix: deploy it into the "
                    "environment's Namespace, which the generator labels"
                ),
            )
        )
    return found


def _covers(w: waivers.Waiver, f: Finding) -> bool:
    return (w.environment, w.rule, w.kind, w.namespace, w.name) == (
        dist.environment_of(f.environment),  # an environment's waiver covers it on each of its clusters
        f.rule,
        f.kind,
        f.namespace,
        f.name,
    )


def _message(message: str, status: object) -> str:
    text = message.removeprefix("validation error: ").removeprefix("validation failure: ")
    return text if status == "fail" else f"Kyverno could not evaluate the policy: {text}"
