"""One add-on Application -> the objects Argo CD would apply for it, rendered from the pinned Go module."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from addons.errors import AddonError
from addons.upstream import Module, Upstream, copy_writable, upstream_of
from testcluster.apply import load_all

HOOK = "helm.sh/hook"
#: Helm hooks Argo CD runs as its own sync hooks (PreSync / PostSync); the others (test, delete, rollback)
#: never run in a sync.
SYNC_HOOKS = {"pre-install", "pre-upgrade", "post-install", "post-upgrade"}
#: Built-in cluster-scoped kinds an operator's install holds (a CRD's own scope decides for custom kinds).
CLUSTER_SCOPED = {
    "APIService",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "PriorityClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
}


@dataclass(frozen=True)
class Tools:
    helm: Path
    kustomize: Path
    kube_version: str  # the cluster's Kubernetes version (helm's .Capabilities.KubeVersion)


@dataclass
class Rendered:
    """What Argo CD applies for one add-on Application: its objects, and the Helm hooks it runs as sync
    hooks."""

    application: str
    server: str
    namespace: str
    upstream: Upstream
    objects: list[dict[str, Any]] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)

    def crds(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == "CustomResourceDefinition"]


def render(app: dict[str, Any], *, versions: dict[str, str], tools: Tools, module: Module) -> Rendered:
    """The Application's source rendered as Argo CD's repo server would, from the module tools/versions.env
    pins; its version must be the pinned one."""
    name = str(app["metadata"]["name"])
    source = app["spec"]["source"]
    up = upstream_of(source)
    pinned, revision = versions[up.version_key], str(source.get("targetRevision"))
    if revision != pinned:
        raise AddonError(
            f"Application {name}: {up.repo_url} pins {revision!r}, tools/versions.env {up.version_key} says "
            f"{pinned!r}; they must agree (run `make synth` after changing tools/versions.env)"
        )
    destination = app["spec"]["destination"]
    namespace = str(destination["namespace"])
    module_dir = module(versions[f"{up.module_key}_MODULE"], versions[f"{up.module_key}_VERSION"])
    with tempfile.TemporaryDirectory(prefix=f"addon-{name}-") as tmp:
        if up.kind == "helm":
            docs = _helm(Path(tmp), module_dir, up, source, revision, namespace, versions, tools, module)
        else:
            docs = _kustomize(Path(tmp), module_dir, up, source, tools)
    out = Rendered(application=name, server=str(destination["server"]), namespace=namespace, upstream=up)
    cluster_kinds = CLUSTER_SCOPED | {
        d["spec"]["names"]["kind"]
        for d in docs
        if d.get("kind") == "CustomResourceDefinition" and d["spec"].get("scope") == "Cluster"
    }
    for doc in docs:
        if doc["kind"] not in cluster_kinds:
            doc.setdefault("metadata", {}).setdefault("namespace", namespace)  # as Argo CD applies it
        hooks = {h.strip() for h in str((doc["metadata"].get("annotations") or {}).get(HOOK, "")).split(",")}
        hooks.discard("")
        if not hooks:
            out.objects.append(doc)
        elif hooks & SYNC_HOOKS:
            out.hooks.append(doc)
    return out


def _helm(
    tmp: Path,
    module_dir: Path,
    up: Upstream,
    source: dict[str, Any],
    version: str,
    namespace: str,
    versions: dict[str, str],
    tools: Tools,
    module: Module,
) -> list[dict[str, Any]]:
    chart = tmp / "chart"
    copy_writable(module_dir / up.folder, chart)
    if up.package is not None:
        up.package(chart, version, versions, module)
    helm = source.get("helm") or {}
    values = helm.get("valuesObject") or {}
    values_file = tmp / "values.json"
    values_file.write_text(json.dumps(values), encoding="utf-8")
    release = str(helm.get("releaseName") or source.get("chart"))
    command = [
        str(tools.helm),
        "template",
        str(chart),
        "--name-template",
        release,
        "--namespace",
        namespace,
        "--kube-version",
        tools.kube_version,
        "--values",
        str(values_file),
        "--include-crds",  # Argo CD's default (helm.skipCrds: false)
    ]
    docs = _load(_run(command, f"helm template of {up.repo_url} {version}"))
    if up.added_by_release is not None:
        chart_values = yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8")) or {}
        docs += up.added_by_release(module_dir, release, namespace, _merged(chart_values, values))
    return docs


def _kustomize(
    tmp: Path, module_dir: Path, up: Upstream, source: dict[str, Any], tools: Tools
) -> list[dict[str, Any]]:
    """`kustomize build` of the path, after the edits the Application asks for (what Argo CD runs)."""
    top = up.folder.split("/", 1)[0]
    copy = tmp / "src"
    if top == ".":
        copy_writable(module_dir, copy, ignore=shutil.ignore_patterns(".git"))
    else:
        copy_writable(module_dir / top, copy / top)
    where = copy / up.folder
    kustomize = source.get("kustomize") or {}
    edits = [["edit", "set", "image", image] for image in kustomize.get("images") or []]
    if kustomize.get("namespace"):
        edits.append(["edit", "set", "namespace", str(kustomize["namespace"])])
    for edit in edits:
        _run([str(tools.kustomize), *edit], f"kustomize {' '.join(edit)}", cwd=where)
    return _load(_run([str(tools.kustomize), "build", "."], f"kustomize build of {up.repo_url}", cwd=where))


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _run(command: list[str], what: str, cwd: Path | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd, timeout=300)
    if done.returncode != 0:
        raise AddonError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-600:]}")
    return done.stdout


def _load(text: str) -> list[dict[str, Any]]:
    return [d for d in load_all(text) if isinstance(d, dict) and d.get("kind")]
