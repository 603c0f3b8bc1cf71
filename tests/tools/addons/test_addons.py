"""The add-ons of dist/infrastructure/, rendered from their pinned upstream sources (tools/addons/) as Argo CD
would: they serve every custom resource the environments use, run the pinned releases, take the spec's values,
and a source or version that is not the pinned release is refused.

Which kinds need a CRD comes from the projects' own CRD files (testcluster.versions.CRD_SOURCES, the CRD
checks' source), and where each folder goes from dist/argocd/'s Applications; nothing from the generator.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from addons.collect import applications, render_all, tools
from addons.errors import AddonError
from addons.render import Rendered, render
from testcluster.apply import load_all, load_folder
from testcluster.versions import CRD_SOURCES, REPO_ROOT, crd_files, module_dir, versions

DIST = REPO_ROOT / "dist"
ARGO_GROUP = "argoproj.io"  # Application, AppProject: Argo CD's own install, which the add-ons are not


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Rendered]]:
    return render_all(DIST)


def custom_kinds() -> set[tuple[str, str]]:
    """(group, kind) of every CRD the pinned projects publish (the CRD checks' files)."""
    found = set()
    for source in CRD_SOURCES:
        for path in crd_files(source):
            for doc in load_all(path.read_text(encoding="utf-8")):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    found.add((doc["spec"]["group"], doc["spec"]["names"]["kind"]))
    return {k for k in found if k[0] != ARGO_GROUP}


def destinations() -> dict[str, str]:
    """dist/ folder -> the server its Application in dist/argocd/ syncs it to (cluster-policies: one of
    several)."""
    out: dict[str, str] = {}
    for m in load_folder(DIST / "argocd"):
        if m.obj["kind"] == "Application":
            path = m.obj["spec"]["source"]["path"].removeprefix("dist/")
            out.setdefault(path, m.obj["spec"]["destination"]["server"])
    return out


def served(renders: list[Rendered]) -> set[tuple[str, str, str]]:
    """(group, version, kind) served by the CRDs of these renders."""
    return {
        (crd["spec"]["group"], v["name"], crd["spec"]["names"]["kind"])
        for r in renders
        for crd in r.crds()
        for v in crd["spec"]["versions"]
        if v.get("served", True)
    }


def test_every_custom_resource_the_environments_use_is_served_by_their_clusters_add_ons(
    rendered: dict[str, list[Rendered]],
) -> None:
    by_server: dict[str, list[Rendered]] = {}
    for renders in rendered.values():
        for r in renders:
            by_server.setdefault(r.server, []).append(r)
    custom = custom_kinds()
    checked = 0
    for folder, server in destinations().items():
        if folder.startswith(("argocd", "infrastructure")):
            continue
        servers = sorted(by_server) if folder == "cluster-policies" else [server]
        for target in servers:
            have = served(by_server.get(target, []))
            for m in load_folder(DIST / folder):
                group, _, version = str(m.obj["apiVersion"]).rpartition("/")
                if (group, m.obj["kind"]) not in custom:
                    continue
                checked += 1
                assert (group, version, m.obj["kind"]) in have, (
                    f"{m.label}: {target}'s add-ons serve no {m.obj['kind']} {group}/{version}"
                )
    assert checked >= 10  # ExternalSecrets, ScaledObjects, routes, ServiceMonitors, the cluster policies


def test_every_add_on_runs_its_pinned_release(rendered: dict[str, list[Rendered]]) -> None:
    """Each add-on's operator Deployments run images tagged with the release tools/versions.env pins (KEDA's
    own kustomization says :main until the Application's image edit)."""
    pins = versions()
    for renders in rendered.values():
        for r in renders:
            release = pins[f"{r.upstream.module_key}_VERSION"].removeprefix("v")
            images = [
                c["image"]
                for o in r.objects
                if o["kind"] == "Deployment"
                for c in o["spec"]["template"]["spec"]["containers"]
            ]
            assert images, r.application
            pinned = [i for i in images if i.rsplit(":", 1)[-1].removeprefix("v") == release]
            assert pinned, f"{r.application}: no image of release {release}: {images}"
            assert not [i for i in images if i.endswith((":main", ":latest"))], (r.application, images)


def test_no_add_on_object_carries_an_empty_metadata_map(rendered: dict[str, list[Rendered]]) -> None:
    """The apiserver stores no empty `labels: {}` or `annotations: {}`, so Argo CD's diff would call an object
    that declares one OutOfSync forever (Kyverno's kyverno-api subchart did, until its values set both)."""
    empty = [
        f"{cluster}: {r.application}: {o['kind']} {o['metadata'].get('name')} {key}"
        for cluster, renders in rendered.items()
        for r in renders
        for o in [*r.objects, *r.hooks]
        for key in ("labels", "annotations")
        if key in o["metadata"] and not o["metadata"][key]
    ]
    assert not empty, f"objects Argo CD would never see in sync: {empty[:5]} ({len(empty)} in all)"


def test_kyverno_runs_with_the_policy_exceptions_the_waivers_need(
    rendered: dict[str, list[Rendered]],
) -> None:
    namespace = next(
        m.obj["spec"]["destination"]["namespace"]
        for m in load_folder(DIST / "argocd")
        if m.obj["kind"] == "Application" and m.obj["spec"]["source"]["path"] == "dist/cluster-policies"
    )
    for renders in rendered.values():
        (kyverno,) = [r for r in renders if r.upstream.module_key == "KYVERNO"]
        args = _admission_args(kyverno.objects)
        assert "--enablePolicyException=true" in args
        assert f"--exceptionNamespace={namespace}" in args


def _one_app(name: str) -> dict[str, Any]:
    for apps in applications(DIST).values():
        for app in apps:
            if name in app["metadata"]["name"]:
                return copy.deepcopy(app)
    raise AssertionError(f"no add-on Application named *{name}*")


def test_a_version_other_than_the_pin_is_refused() -> None:
    app = _one_app("keda")
    app["spec"]["source"]["targetRevision"] = "v2.20.0"
    with pytest.raises(AddonError, match="KEDA_VERSION"):
        render(app, versions=versions(), tools=tools(), module=module_dir)


def test_a_kyverno_chart_pin_that_is_not_the_pinned_kyverno_s_chart_is_refused() -> None:
    app = _one_app("kyverno")
    pins = {**versions(), "KYVERNO_CHART_VERSION": "3.8.0"}
    app["spec"]["source"]["targetRevision"] = "3.8.0"
    with pytest.raises(AddonError, match=r"charts/kyverno/Chart\.yaml"):
        render(app, versions=pins, tools=tools(), module=module_dir)


def test_a_source_no_project_publishes_is_refused() -> None:
    app = _one_app("cert-manager")
    app["spec"]["source"]["repoURL"] = "https://charts.example.com"
    with pytest.raises(AddonError, match="no add-on release"):
        render(app, versions=versions(), tools=tools(), module=module_dir)


def _admission_args(objects: list[dict[str, Any]]) -> list[str]:
    (admission,) = [
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "kyverno-admission-controller"
    ]
    args: list[str] = admission["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_values_from_the_application_reach_the_render() -> None:
    """The render takes the Application's own values: a change there shows in what is applied."""
    app = _one_app("kyverno")
    app["spec"]["source"]["helm"]["valuesObject"]["features"]["policyExceptions"]["namespace"] = "elsewhere"
    out = render(app, versions=versions(), tools=tools(), module=module_dir)
    assert "--exceptionNamespace=elsewhere" in _admission_args(out.objects)


def test_the_cli_writes_one_file_per_add_on(tmp_path: Path) -> None:
    from addons.__main__ import main

    assert main(["--out", str(tmp_path)]) == 0
    written = sorted(
        p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.yaml") if ".hooks." not in p.name
    )
    want = sorted(
        f"{cluster}/{app['metadata']['name']}.yaml"
        for cluster, apps in applications(DIST).items()
        for app in apps
    )
    assert written == want
    crds = [
        d
        for d in yaml.safe_load_all((tmp_path / want[0]).read_text())
        if d and d["kind"] == "CustomResourceDefinition"
    ]
    assert crds
