"""dist/infrastructure/<cluster>/ (constructs/mlplatform/infrastructure.py): one Argo CD Application per
add-on a cluster's environments use, pinned to tools/versions.env, synced by the root before the environments.

Expectations come from the overlays' YAML (which routing, autoscaler and features each environment declares),
from tools/versions.env read here, and from Argo CD's documented fields; whether the pinned sources render and
serve the environments' CRDs is tests/tools/addons/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.schema import SpecError
from mlplatform.synth import render
from testcluster.versions import versions

WAVE = "argocd.argoproj.io/sync-wave"
IN_CLUSTER = "https://kubernetes.default.svc"


def overlays(root: Path) -> dict[str, dict[str, Any]]:
    return {
        p.stem: yaml.safe_load(p.read_text())
        for p in sorted((root / "overlays").glob("*.yaml"))
        if p.stem != "platform"
    }


def addons_by_server(folders: dict[str, dict[str, str]]) -> dict[str, dict[str, dict[str, Any]]]:
    """destination server -> add-on name (the Application's name between `addon-` and the cluster) -> app."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for folder, files in folders.items():
        if not folder.startswith("infrastructure/"):
            continue
        cluster = folder.split("/", 1)[1]
        for text in files.values():
            app = yaml.safe_load(text)
            name = app["metadata"]["name"].removeprefix("mlplatform-addon-").removesuffix(f"-{cluster}")
            found.setdefault(app["spec"]["destination"]["server"], {})[name] = app
    return found


def expected_addons(root: Path) -> dict[str, set[str]]:
    """What each cluster needs, read from the overlays: Kyverno for the cluster policies, External Secrets
    for the secrets, cert-manager for Ingress TLS, Envoy Gateway for Gateway routing, KEDA for a keda
    autoscaler or jobs, the Prometheus Operator for a ServiceMonitor."""
    want: dict[str, set[str]] = {}
    for spec in overlays(root).values():
        server = spec["cluster"]["server"]
        need = {"kyverno", "external-secrets"}
        need.add("cert-manager" if spec["routing"]["kind"] == "Ingress" else "envoy-gateway")
        keda = any((s.get("autoscaling") or {}).get("engine") == "keda" for s in spec["services"].values())
        if keda or (spec.get("jobs") or {}).get("enabled"):
            need.add("keda")
        if (spec.get("features") or {}).get("serviceMonitor"):
            need.add("prometheus-operator")
        want.setdefault(server, set()).update(need)
    return want


def test_each_cluster_gets_the_add_ons_its_environments_use(rendered: Any, repo_root: Path) -> None:
    got = {server: set(apps) for server, apps in addons_by_server(rendered.folders).items()}
    assert got == expected_addons(repo_root)
    assert (
        "envoy-gateway" not in got[IN_CLUSTER] and "cert-manager" in got[IN_CLUSTER]
    )  # dev and stage: Ingress


def test_every_add_on_pins_the_version_tools_versions_env_records(rendered: Any) -> None:
    pins = versions()
    want = {
        "cert-manager": pins["CERT_MANAGER_VERSION"],
        "envoy-gateway": pins["ENVOY_GATEWAY_VERSION"],
        "external-secrets": pins["EXTERNAL_SECRETS_CHART_VERSION"],
        "keda": pins["KEDA_VERSION"],
        "kyverno": pins["KYVERNO_CHART_VERSION"],
        "prometheus-operator": pins["PROMETHEUS_OPERATOR_VERSION"],
    }
    seen = set()
    for apps in addons_by_server(rendered.folders).values():
        for name, app in apps.items():
            assert app["spec"]["source"]["targetRevision"] == want[name], name
            seen.add(name)
    assert seen == set(want)
    keda = next(a["keda"] for a in addons_by_server(rendered.folders).values() if "keda" in a)
    tag = pins["KEDA_VERSION"].removeprefix("v")  # KEDA's kustomization names its images :main
    assert {i.rsplit(":", 1)[1] for i in keda["spec"]["source"]["kustomize"]["images"]} == {tag}


def test_add_ons_never_delete_their_operators(rendered: Any) -> None:
    """No resources finalizer and no automated prune: deleting an add-on's Application, or an upgrade that
    drops an object, leaves the operator and its CRDs (and every team's custom resources) in place."""
    for apps in addons_by_server(rendered.folders).values():
        for name, app in apps.items():
            assert "finalizers" not in app["metadata"], name
            policy = app["spec"]["syncPolicy"]
            assert policy["automated"] == {"prune": False, "selfHeal": True}, name
            assert {"ServerSideApply=true", "CreateNamespace=true"} <= set(policy["syncOptions"]), name
            assert policy["retry"]["limit"] >= 1, name


def test_kyverno_takes_policy_exceptions_from_the_waivers_namespace(rendered: Any) -> None:
    """The waivers become PolicyExceptions in dist/cluster-policies/'s namespace; Kyverno honours them only
    with the feature on and from that namespace."""
    policies = [yaml.safe_load(t) for t in rendered.folders["cluster-policies"].values()]
    namespaces = {p["metadata"].get("namespace") for p in policies if p["kind"] == "PolicyException"}
    namespaces |= {
        a["spec"]["destination"]["namespace"]
        for a in _root_apps(rendered)
        if "cluster-policies" in a["spec"]["source"]["path"]
    }
    (namespace,) = namespaces - {None}
    for apps in addons_by_server(rendered.folders).values():
        values = apps["kyverno"]["spec"]["source"]["helm"]["valuesObject"]
        assert values["features"]["policyExceptions"] == {"enabled": True, "namespace": namespace}


def _root_apps(rendered: Any) -> list[dict[str, Any]]:
    docs = [yaml.safe_load(t) for t in rendered.folders["argocd"].values()]
    return [d for d in docs if d["kind"] == "Application"]


def test_the_root_syncs_each_clusters_add_ons_before_the_cluster_policies_and_the_environments(
    rendered: Any,
) -> None:
    apps = {a["spec"]["source"]["path"]: a for a in _root_apps(rendered)}
    wave = {path: int(a["metadata"]["annotations"][WAVE]) for path, a in apps.items()}
    infrastructure = [p for p in apps if p.startswith("dist/infrastructure/")]
    assert sorted(infrastructure) == sorted(
        f"dist/{f}" for f in rendered.folders if f.startswith("infrastructure/")
    )
    later = [p for p in apps if not p.startswith("dist/infrastructure/") and p != "dist/argocd"]
    assert later and max(wave[p] for p in infrastructure) < min(wave[p] for p in later)
    for path in infrastructure:
        app = apps[path]
        assert app["spec"]["destination"] == {"server": IN_CLUSTER, "namespace": "argocd"}  # Applications
        assert "finalizers" not in app["metadata"]
        assert app["spec"]["project"] == "mlplatform-infrastructure"


def test_the_infrastructure_project_allows_exactly_the_add_ons_sources_and_namespaces(rendered: Any) -> None:
    docs = [yaml.safe_load(t) for t in rendered.folders["argocd"].values()]
    (project,) = [
        d for d in docs if d["kind"] == "AppProject" and d["metadata"]["name"] == "mlplatform-infrastructure"
    ]
    sources = set(project["spec"]["sourceRepos"])
    destinations = {(d["server"], d["namespace"]) for d in project["spec"]["destinations"]}
    want_sources, want_destinations = set(), {(IN_CLUSTER, "argocd")}
    for apps in addons_by_server(rendered.folders).values():
        for app in apps.values():
            want_sources.add(app["spec"]["source"]["repoURL"])
            dest = app["spec"]["destination"]
            want_destinations.add((dest["server"], dest["namespace"]))
    assert want_sources <= sources and len(sources - want_sources) == 1  # and this repository
    assert want_destinations <= destinations
    assert {n for _, n in destinations - want_destinations} == {"kube-system"}  # KEDA's one RoleBinding there
    # the environments' project stays closed: nothing cluster-wide beyond what it had
    (envs,) = [d for d in docs if d["kind"] == "AppProject" and d["metadata"]["name"] == "mlplatform"]
    assert {"group": "*", "kind": "*"} not in envs["spec"]["clusterResourceWhitelist"]


def test_exclude_and_disable_come_from_the_spec(spec_copy: Path, edit_yaml: Any) -> None:
    platform = spec_copy / "overlays" / "platform.yaml"
    edit_yaml(platform, lambda d: d.update(infrastructure={"exclude": ["cert-manager", "keda"]}))
    got = {s: set(a) for s, a in addons_by_server(render(spec_copy).folders).items()}
    assert not any({"cert-manager", "keda"} & names for names in got.values())
    assert all("kyverno" in names for names in got.values())

    edit_yaml(platform, lambda d: d.update(infrastructure={"enabled": False}))
    folders = render(spec_copy).folders
    assert not [f for f in folders if f.startswith("infrastructure")]
    docs = [yaml.safe_load(t) for t in folders["argocd"].values()]
    assert not [d for d in docs if "infrastructure" in d["metadata"]["name"]]


def test_an_unknown_add_on_is_refused_with_the_allowed_names(spec_copy: Path, edit_yaml: Any) -> None:
    edit_yaml(
        spec_copy / "overlays" / "platform.yaml", lambda d: d.update(infrastructure={"exclude": ["nginx"]})
    )
    with pytest.raises(SpecError) as err:
        render(spec_copy)
    line = str(err.value)
    assert "platform.yaml" in line and "infrastructure.exclude" in line and "keda" in line, line
