"""Where each add-on's upstream source lives in its project's Go module, and how the project's release turns
that folder into what its Application names (a chart version, a values file, a subchart).

Keyed by the Application's source (repoURL, chart or path), never by the generator's add-on table: a source
the generator writes that no project publishes is an error here. Every step mirrors the project's own release
tooling, named beside it; nothing here edits a template.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from addons.errors import AddonError
from testcluster.apply import load_all

Module = Callable[[str, str], Path]  # (module path, version) -> its folder in the Go module cache


@dataclass(frozen=True)
class Upstream:
    """One project's release channel: the Application's source must match `repo_url` and `chart`/`path`."""

    repo_url: str
    version_key: str  # tools/versions.env: the version the Application must pin
    module_key: str  # tools/versions.env: <KEY>_MODULE and <KEY>_VERSION, the Go module holding the source
    folder: str  # the chart or kustomization inside the module
    kind: str  # "helm" or "kustomize"
    chart: str | None = (
        None  # a chart repository's chart name (None: a path in a git repository or OCI artifact)
    )
    path: str | None = None
    #: (chart copy, the Application's version, versions.env, module lookup): the release's packaging steps
    package: Callable[[Path, str, dict[str, str], Module], None] | None = None
    #: (module folder, release name, namespace, the chart's values with the Application's): objects the
    #: release adds to the chart's render (External Secrets' CRDs, templated in at release time)
    added_by_release: Callable[[Path, str, str, dict[str, Any]], list[dict[str, Any]]] | None = None


def _edit_chart(chart: Path, **fields: Any) -> dict[str, Any]:
    meta = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
    meta.update(fields)
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    return dict(meta)


def _cert_manager(chart: Path, version: str, versions: dict[str, str], module: Module) -> None:
    """cert-manager's release tool writes Chart.yaml from Chart.template.yaml with the release's version."""
    text = (chart / "Chart.template.yaml").read_text(encoding="utf-8")
    text = text.replace("{{IS_PRERELEASE}}", "false")
    text = re.sub(r"(?m)^(version|appVersion): .*$", lambda m: f"{m.group(1)}: {version}", text)
    (chart / "Chart.yaml").write_text(text, encoding="utf-8")
    (chart / "Chart.template.yaml").unlink()


def _envoy_gateway(chart: Path, version: str, versions: dict[str, str], module: Module) -> None:
    """Envoy Gateway's `make helm-generate` writes values.yaml from values.tmpl.yaml (envsubst with the
    release's image) and its `helm-package` sets the chart's version and appVersion to the tag."""
    text = (chart / "values.tmpl.yaml").read_text(encoding="utf-8")
    text = text.replace("${GatewayImage}", f"docker.io/envoyproxy/gateway:{version}")
    text = text.replace("${GatewayImagePullPolicy}", "IfNotPresent")
    (chart / "values.yaml").write_text(text, encoding="utf-8")
    (chart / "values.tmpl.yaml").unlink()
    _edit_chart(chart, version=version, appVersion=version)


def _external_secrets(chart: Path, version: str, versions: dict[str, str], module: Module) -> None:
    """External Secrets' release sets the chart's version (its Chart.yaml at the tag may name the previous
    one) and, with hack/helm.generate.sh, templates its CRDs (deploy/crds/bundle.yaml) into the chart: see
    external_secrets_crds. Its one dependency, bitwarden-sdk-server (off by default), is an OCI chart no
    module carries: left out, as `helm dependency build` would leave a disabled one unused."""
    meta = _edit_chart(chart, version=version, appVersion=f"v{version}")
    _drop_dependencies(chart, meta, {"bitwarden-sdk-server"})


def _kyverno(chart: Path, version: str, versions: dict[str, str], module: Module) -> None:
    """Kyverno's chart at its tag, its local subcharts (crds, grafana) included. Its kyverno-api subchart (the
    policies.kyverno.io CRDs, enabled with the CRDs) comes from github.com/kyverno/api at the version
    Kyverno's go.mod requires; openreports and reports-server (off by default) live in other chart
    repositories and are left out."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
    if str(meta.get("version")) != version:
        raise AddonError(
            f"the Application pins Kyverno's chart {version}, but charts/kyverno/Chart.yaml of "
            f"{versions['KYVERNO_MODULE']} {versions['KYVERNO_VERSION']} is version {meta.get('version')}; "
            "set KYVERNO_CHART_VERSION in tools/versions.env to the chart of the pinned Kyverno"
        )
    kyverno_go_mod = module(versions["KYVERNO_MODULE"], versions["KYVERNO_VERSION"]) / "go.mod"
    found = re.search(r"(?m)^\s*github\.com/kyverno/api (\S+)", kyverno_go_mod.read_text(encoding="utf-8"))
    if found is None:
        raise AddonError(f"{kyverno_go_mod} requires no github.com/kyverno/api: cannot find kyverno-api")
    api = module("github.com/kyverno/api", found.group(1)) / "charts" / "kyverno-api"
    wanted = next(d for d in meta["dependencies"] if d["name"] == "kyverno-api")
    copy_writable(api, chart / "charts" / "kyverno-api")
    _edit_chart(chart / "charts" / "kyverno-api", version=wanted["version"])
    _drop_dependencies(chart, meta, {"openreports", "reports-server"})


def _drop_dependencies(chart: Path, meta: dict[str, Any], names: set[str]) -> None:
    meta["dependencies"] = [d for d in meta.get("dependencies", []) if d["name"] not in names]
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    (chart / "Chart.lock").unlink(missing_ok=True)


def copy_writable(src: Path, dst: Path, *, ignore: Callable[..., Any] | None = None) -> None:
    """A copy out of the Go module cache (read-only there) that the release's steps and kustomize may edit."""
    shutil.copytree(src, dst, ignore=ignore)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)


def external_secrets_crds(
    module_dir: Path, release: str, namespace: str, values: dict[str, Any]
) -> list[dict[str, Any]]:
    """deploy/crds/bundle.yaml as hack/helm.generate.sh templates it into the chart, at these values: each CRD
    behind `installCRDs` (and its `crds.create<Kind>` switch for the cluster-wide and push kinds), v1alpha1
    served only with `crds.conversion.enabled`, v1beta1 served as `crds.unsafeServeV1Beta1` says, and the
    conversion webhook pointed at the release's webhook Service."""
    crds_values = values.get("crds") or {}
    if not values.get("installCRDs", True):
        return []
    out = []
    bundle = module_dir / "deploy" / "crds" / "bundle.yaml"
    for crd in load_all(bundle.read_text(encoding="utf-8")):
        if not crd:
            continue
        kind = crd["spec"]["names"]["kind"]
        if ("Cluster" in kind or "PushSecret" in kind) and not crds_values.get(f"create{kind}", True):
            continue
        if "ExternalSecret" in kind or "SecretStore" in kind:
            served_beta = bool(crds_values.get("unsafeServeV1Beta1", False))
            conversion = bool((crds_values.get("conversion") or {}).get("enabled", False))
            versions = []
            for v in crd["spec"]["versions"]:
                if v["name"] == "v1alpha1" and not conversion:
                    continue
                if v["name"] == "v1beta1" and not v.get("served", True):
                    v["served"] = served_beta
                versions.append(v)
            crd["spec"]["versions"] = versions
        service = (
            ((crd["spec"].get("conversion") or {}).get("webhook") or {}).get("clientConfig") or {}
        ).get("service")
        if service is not None:
            if service.get("name") == "kubernetes":
                service["name"] = f"{release}-webhook"
            if service.get("namespace") == "default":
                service["namespace"] = namespace
        out.append(crd)
    return out


UPSTREAMS = (
    Upstream(
        "https://charts.jetstack.io",
        "CERT_MANAGER_VERSION",
        "CERT_MANAGER",
        "deploy/charts/cert-manager",
        "helm",
        chart="cert-manager",
        package=_cert_manager,
    ),
    Upstream(
        "oci://registry-1.docker.io/envoyproxy/gateway-helm",
        "ENVOY_GATEWAY_VERSION",
        "ENVOY_GATEWAY",
        "charts/gateway-helm",
        "helm",
        path=".",
        package=_envoy_gateway,
    ),
    Upstream(
        "https://charts.external-secrets.io",
        "EXTERNAL_SECRETS_CHART_VERSION",
        "EXTERNAL_SECRETS",
        "deploy/charts/external-secrets",
        "helm",
        chart="external-secrets",
        package=_external_secrets,
        added_by_release=external_secrets_crds,
    ),
    Upstream(
        "https://kyverno.github.io/kyverno/",
        "KYVERNO_CHART_VERSION",
        "KYVERNO",
        "charts/kyverno",
        "helm",
        chart="kyverno",
        package=_kyverno,
    ),
    Upstream(
        "https://github.com/kedacore/keda.git",
        "KEDA_VERSION",
        "KEDA",
        "config/default",
        "kustomize",
        path="config/default",
    ),
    Upstream(
        "https://github.com/prometheus-operator/prometheus-operator.git",
        "PROMETHEUS_OPERATOR_VERSION",
        "PROMETHEUS_OPERATOR",
        ".",
        "kustomize",
        path=".",
    ),
)


def upstream_of(source: dict[str, Any]) -> Upstream:
    """The project release an Application's source names."""
    for up in UPSTREAMS:
        same = source.get("repoURL") == up.repo_url and source.get("chart") == up.chart
        if same and (up.path is None or source.get("path") == up.path):
            return up
    known = ", ".join(f"{u.repo_url} {u.chart or u.path}" for u in UPSTREAMS)
    raise AddonError(
        f"source {source.get('repoURL')} {source.get('chart') or source.get('path')} is no add-on release "
        f"this repository knows how to render; known: {known}"
    )
