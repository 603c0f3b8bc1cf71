"""Typed cdk8s classes only, and every name one object uses to point at another resolves."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import cdk8s
import cdk8s_plus_33 as kplus
import yaml

from mlplatform import jsii_structs
from mlplatform.argocd import ArgoCdChart, retry
from mlplatform.chart import EnvironmentChart
from mlplatform.infrastructure import InfrastructureChart, clusters, load_versions
from mlplatform.schema import load_environment, load_platform
from mlplatform.schema.loader import list_environments
from mlplatform.synth import Rendered, render

CUSTOM_KINDS = {
    "ExternalSecret",
    "ScaledObject",
    "TriggerAuthentication",
    "HTTPRoute",
    "GRPCRoute",
    "ServiceMonitor",
    "Application",
    "AppProject",
}


def _api_objects(chart: cdk8s.Chart) -> list[cdk8s.ApiObject]:
    return [c for c in chart.node.find_all() if isinstance(c, cdk8s.ApiObject)]


def test_every_object_comes_from_a_typed_class(repo_root: Path) -> None:
    """No hand-built ApiObject: an L1 class, an imported CRD class, or the object of an L2 construct."""
    app = cdk8s.App()
    platform = load_platform(repo_root)
    envs = [load_environment(n, repo_root=repo_root, platform=platform) for n in list_environments(repo_root)]
    charts: list[cdk8s.Chart] = [EnvironmentChart(app, e.name, env=e) for e in envs]
    versions = load_versions()
    charts.append(ArgoCdChart(app, "argocd", platform=platform, envs=envs, versions=versions))
    for cluster, on_cluster in clusters(envs).items():
        charts.append(
            InfrastructureChart(
                app,
                f"infrastructure-{cluster}",
                platform=platform,
                server=on_cluster[0].server,
                envs=on_cluster,
                versions=versions,
                retry=retry(platform),
            )
        )
    seen: dict[str, set[str]] = {}
    for chart in charts:
        for obj in _api_objects(chart):
            where = f"{chart.node.id}/{obj.kind}/{obj.name}"
            assert type(obj) is not cdk8s.ApiObject, f"{where}: a plain ApiObject"
            if isinstance(obj.node.scope, kplus.Resource):  # the object a cdk8s-plus L2 construct made
                seen.setdefault("cdk8s-plus", set()).add(obj.kind)
            elif obj.kind in CUSTOM_KINDS:
                assert type(obj).__module__.startswith("mlplatform_crds."), f"{where}: {type(obj)}"
                seen.setdefault("imported", set()).add(obj.kind)
            else:
                assert type(obj).__module__ == "cdk8s_plus_33.k8s", f"{where}: {type(obj)}"
                seen.setdefault("k8s", set()).add(obj.kind)
    assert seen["imported"] == CUSTOM_KINDS
    assert {"ConfigMap", "Namespace", "ServiceAccount"} <= seen["cdk8s-plus"]
    assert {"Deployment", "StatefulSet", "Service", "NetworkPolicy"} <= seen["k8s"]


def _by_kind(objs: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for o in objs:
        out.setdefault(o["kind"], set()).add(o["metadata"]["name"])
    return out


def _pods(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o["spec"]["template"] for o in objs if o["kind"] in ("Deployment", "StatefulSet")]


def test_every_reference_resolves(objects: dict[str, list[dict[str, Any]]]) -> None:
    """Read back from the rendered objects only: what one object names, another object is called."""
    for env in ("dev", "stage", "prod"):
        objs = objects[env]
        kinds = _by_kind(objs)
        secrets = {o["spec"]["target"]["name"] for o in objs if o["kind"] == "ExternalSecret"}
        pod_labels = [p["metadata"]["labels"] for p in _pods(objs)]
        for pod in _pods(objs):
            spec = pod["spec"]
            assert spec["serviceAccountName"] in kinds["ServiceAccount"], env
            for volume in spec["volumes"]:
                if "secret" in volume:
                    assert volume["secret"]["secretName"] in secrets, (env, volume)
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in kinds["ConfigMap"], (env, volume)
                if "persistentVolumeClaim" in volume:
                    claim = volume["persistentVolumeClaim"]["claimName"]
                    assert claim in kinds["PersistentVolumeClaim"], (env, volume)
            for container in spec["containers"]:
                for source in container.get("envFrom", []):
                    assert source["configMapRef"]["name"] in kinds["ConfigMap"], env
        for o in objs:
            where = f"{env}/{o['kind']}/{o['metadata']['name']}"
            if o["kind"] == "Service":
                selector = o["spec"]["selector"].items()
                matching = [labels for labels in pod_labels if selector <= labels.items()]
                assert matching or "statefulset.kubernetes.io/pod-name" in o["spec"]["selector"], where
            if o["kind"] == "HTTPRoute":
                for backend in o["spec"]["rules"][0]["backendRefs"]:
                    assert backend["name"] in kinds["Service"], where
            if o["kind"] == "Ingress":
                backend = o["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
                assert backend in kinds["Service"], where
            if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject"):
                assert o["spec"]["scaleTargetRef"]["name"] in kinds["Deployment"], where


def test_canary_is_the_stable_builder_with_its_own_version(
    objects: dict[str, list[dict[str, Any]]], find_object: Any
) -> None:
    """The canary Deployment differs from the stable one only in what makes it the canary."""
    stable = find_object(objects["prod"], "Deployment", "inference")
    canary = find_object(objects["prod"], "Deployment", "inference-canary")
    assert canary["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "inference",
        "track": "canary",
    }
    assert canary["spec"]["template"]["metadata"]["labels"]["track"] == "canary"
    assert canary["spec"]["replicas"] == 1 and "replicas" not in stable["spec"]  # KEDA scales the stable one
    pods = [d["spec"]["template"]["spec"] for d in (stable, canary)]
    images = [p["containers"][0]["image"] for p in pods]
    # each Deployment runs the digest its own overlay field pins (`make image-pin` may pin both to one build)
    overlay = yaml.safe_load((Path(__file__).resolve().parents[2] / "overlays" / "prod.yaml").read_text())
    service = overlay["services"]["inference"]
    digests = [service["imageDigest"], service["canary"]["imageDigest"]]
    assert images == [f"ghcr.io/example/mlplatform-inference@{d}" for d in digests]
    configs = [p["containers"][0]["envFrom"][0]["configMapRef"]["name"] for p in pods]
    assert configs == ["inference-config", "inference-canary-config"]
    policies = [
        next(v for v in p["volumes"] if v["name"] == "identity")["projected"]["sources"][0] for p in pods
    ]
    assert [s["configMap"].pop("name") for s in policies] == [
        "inference-identity",
        "inference-canary-identity",
    ]
    for pod in pods:
        pod["containers"][0].pop("image")
        pod["containers"][0].pop("envFrom")
        for spread in pod.get("topologySpreadConstraints", []):
            spread["labelSelector"]["matchLabels"].pop("track")
        for init in pod.get("initContainers", []):
            init.pop("image")
            init.pop("command")
    assert pods[0] == pods[1]
    service = find_object(objects["prod"], "Service", "inference-canary")
    assert service["spec"]["selector"] == canary["spec"]["selector"]["matchLabels"]


def test_lean_struct_serializer_changes_nothing(rendered: Rendered, repo_root: Path) -> None:
    """jsii's own serializer (every declared field, unset ones as null) gives the same bytes."""
    assert jsii_structs.install()  # the pinned jsii is the one it was written for
    stock = render(repo_root, lean_structs=False)
    assert jsii_structs._stock is None  # rendered by jsii's own serializer
    assert stock.folders == rendered.folders


def test_every_cdk8s_yaml_import_has_its_generated_package(repo_root: Path) -> None:
    """cdk8s.yaml lists what `cdk8s import` makes; a new entry without its committed classes fails here."""
    config = yaml.safe_load((repo_root / "cdk8s.yaml").read_text())
    groups = []
    for entry in config["imports"]:
        module, _, source = entry.partition(":=")
        assert module == "mlplatform_crds", entry
        groups.append(Path(source).name.removesuffix(".yaml"))
    packages = {
        str(p.parent.parent.relative_to(repo_root / "imports")).replace("/", ".")
        for p in (repo_root / "imports" / "mlplatform_crds").rglob("_jsii/__init__.py")
    }
    # cdk8s import names a group's package by the group reversed: gateway.networking.k8s.io -> io.k8s...
    expected = {"mlplatform_crds." + ".".join(reversed(g.replace("-", "_").split("."))) for g in groups}
    assert packages == expected
    for package in expected:
        module = importlib.import_module(package)
        assert any(isinstance(v, type) and issubclass(v, cdk8s.ApiObject) for v in vars(module).values())
