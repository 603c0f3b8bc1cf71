"""`runtime: kserve` through the gate (`make check`'s engine, real Kyverno and conftest) and against the
session's real kube-apiserver, with KServe's CRD from its pinned Go module.

No KServe controller runs here: the InferenceServices are only admitted (validated against the CRD's schema
and stored); nothing makes their Deployments, Services or pods, so there is nothing to scale or boot for
them. What this shows: the KServe render of prod (Gateway API, KEDA, a canary whose model comes from an https://
source: the model-source init container and its egress policy), of stage (Ingress, HPA, the model-cache
PVC) and of prod with KServe's own Gateway API integration making the route (`routing.madeBy: kserve`, no
canary) passes the gate with no finding and is accepted as a whole, in Argo CD's order; a predictor field
the CRD does not know is rejected by the apiserver as it would be in a cluster that runs KServe; and an
InferenceService with two ways in, or none, fails the gate.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.components.kserve import CLUSTER_LOCAL, VISIBILITY
from mlplatform.schema.catalog import CATALOG_FILE
from mlplatform.synth import synthesize
from testcluster.apply import expected_warnings, install_crds, kinds_in
from testcluster.kubeapi import Kube
from testcluster.run import check_environment
from testcluster.versions import module_dir, pinned

from .conftest import REPO, env_findings, first, write_env

ENVS = ("kprod", "kstage", "kgw")


def _kserve_routes(data: dict[str, Any]) -> None:
    """prod as `kgw`: KServe's Gateway API integration makes the route; hence no canary, KServe's host."""
    data["namespace"] = "mlplatform-gw-kserve"
    data["routing"] |= {"madeBy": "kserve", "ingressDomain": "models.example.com"}
    for name, service in data["services"].items():
        service.pop("canary", None)
        service["host"] = f"{name}-{data['namespace']}.models.example.com"


@pytest.fixture(scope="module")
def kserve_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """overlays/ with prod and stage as `runtime: kserve` (kprod, kstage, kgw), each in its own namespace."""
    root = tmp_path_factory.mktemp("kserve-spec")
    shutil.copytree(REPO / "overlays", root / "overlays")
    (root / Path(CATALOG_FILE).parent).mkdir(parents=True)
    catalog = json.loads((REPO / CATALOG_FILE).read_text())
    source = {"kind": "https", "url": "https://models.example.com/bc-3.tar", "sha256": "cd" * 32}
    catalog["models"]["breast-cancer"]["3"] = {"sha256": "ab" * 32, "source": source}
    (root / CATALOG_FILE).write_text(json.dumps(catalog))
    for env in ("prod", "stage"):
        source = root / "overlays" / f"{env}.yaml"
        data = yaml.safe_load(source.read_text())
        data.update(runtime="kserve", namespace=f"{data['namespace']}-kserve")
        for service in data["services"].values():  # KServe's controller makes the autoscaler, on CPU
            (service.get("autoscaling") or {}).pop("signal", None)
        canary = data["services"]["inference"].get("canary")
        if canary:  # prod's canary serves a version fetched from an https:// URL (model-source, its egress)
            canary["models"] = [{"name": "breast-cancer", "version": "3"}, *canary["models"][1:]]
        for service in data["services"].values():
            service["host"] = f"kserve-{service['host']}"
        source.unlink()
        (root / "overlays" / f"k{env}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        if env == "prod":
            _kserve_routes(data)
            (root / "overlays" / "kgw.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (root / "overlays" / "dev.yaml").unlink()
    return root


@pytest.fixture(scope="module")
def kserve_dist(kserve_spec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The KServe environments rendered into a temporary dist/."""
    out = tmp_path_factory.mktemp("kserve-dist") / "dist"
    synthesize(kserve_spec, out=out)
    return out


@pytest.mark.parametrize("env", ENVS)
def test_the_kserve_render_passes_the_gate(
    kserve_spec: Path, kserve_dist: Path, env: str, tmp_path: Path
) -> None:
    assert env_findings(kserve_spec, kserve_dist, env, tmp_path) == []


def test_kserves_own_route_replaces_ours(kserve_dist: Path) -> None:
    docs = [yaml.safe_load(p.read_text()) for p in sorted((kserve_dist / "kgw").glob("*.yaml"))]
    assert not [d for d in docs if d["kind"] in ("Ingress", "HTTPRoute")]
    (isvc,) = [d for d in docs if d["kind"] == "InferenceService"]
    assert "networking.kserve.io/visibility" not in isvc["metadata"]["labels"]
    # the Gateway's pods (the ingress-controller peer prod declares) still reach the predictor pods
    allow = [d for d in docs if d["metadata"]["name"] == "allow-inference-from-ingress-controller"]
    assert allow, "no NetworkPolicy from the ingress controller"
    assert (
        allow[0]["spec"]["podSelector"]["matchLabels"].items() <= isvc["spec"]["predictor"]["labels"].items()
    )


@pytest.mark.parametrize(
    ("env", "name", "label"),
    [
        ("kprod", "inference-canary", None),  # behind our HTTPRoute, but KServe would route it too
        ("kstage", "inference", None),  # behind our Ingress, and KServe's TLS-less one
        ("kgw", "inference", "cluster-local"),  # no route of ours, and KServe makes none
    ],
)
def test_one_way_into_each_inference_service(
    kserve_spec: Path, kserve_dist: Path, tmp_path: Path, env: str, name: str, label: str | None
) -> None:
    dist = tmp_path / "dist"
    shutil.copytree(kserve_dist / env, dist / env)
    path = dist / env / f"inferenceservice-{name}.yaml"
    doc = yaml.safe_load(path.read_text())
    labels = doc["metadata"]["labels"]
    labels.pop("networking.kserve.io/visibility", None)
    if label:
        labels["networking.kserve.io/visibility"] = label
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    found = env_findings(kserve_spec, dist, env, tmp_path)
    assert [f for f in found if f.startswith("inferenceservice-one-route: ") and name in f], found


def test_the_kserve_render_is_admitted(kube: Kube, kserve_dist: Path) -> None:
    install_crds(kube, kinds_in(kserve_dist))
    for env in ENVS:
        result = check_environment(kube, kserve_dist / env, expected=expected_warnings(), boot_check=False)
        assert not result.folder.failures, "\n".join(result.folder.failures)
        applied = [m.obj for m in result.folder.applied]
        services = {o["metadata"]["name"] for o in applied if o["kind"] == "InferenceService"}
        assert services >= {"inference"}, env
        for name in services:
            namespace = {o["metadata"]["namespace"] for o in applied if o["kind"] == "InferenceService"}
            stored = kube.get("serving.kserve.io/v1beta1", "InferenceService", namespace.pop(), name)
            assert stored is not None, name
            assert stored["spec"]["predictor"]["containers"][0]["readinessProbe"]["httpGet"]["port"] == "http"
        # The API runs as InferenceServices only (a job worker, where jobs are on, stays a Deployment).
        deployments = {o["metadata"]["name"] for o in applied if o["kind"] == "Deployment"}
        assert not deployments & services, env
        assert all(name.endswith("-worker") for name in deployments), deployments
    canary = kube.get(
        "serving.kserve.io/v1beta1", "InferenceService", "mlplatform-prod-kserve", "inference-canary"
    )
    assert canary is not None
    assert [c["name"] for c in canary["spec"]["predictor"]["initContainers"]] == ["model-source"]
    egress = "allow-inference-to-model-sources"
    assert kube.get("networking.k8s.io/v1", "NetworkPolicy", "mlplatform-prod-kserve", egress) is not None


def test_a_predictor_field_the_crd_lacks_is_rejected(kube: Kube, kserve_dist: Path, tmp_path: Path) -> None:
    install_crds(kube, kinds_in(kserve_dist))
    files = sorted((kserve_dist / "kstage").glob("*.yaml"))
    docs = {p.name: list(yaml.safe_load_all(p.read_text())) for p in files}
    first(docs, "InferenceService", "inference")["spec"]["predictor"]["replicaCount"] = 3
    folder = write_env(
        docs, tmp_path / "kstage", rename_namespace=("mlplatform-stage-kserve", "kserve-mutant")
    )
    result = check_environment(kube, folder, expected=expected_warnings(), boot_check=False)
    assert any("InferenceService" in f and "replicaCount" in f for f in result.folder.failures), (
        result.folder.failures
    )


def test_what_the_render_assumes_of_kserve_holds_in_the_pinned_module() -> None:
    """The label that stops KServe making a route, and the refusal of `madeBy: kserve` with Ingress, are read
    from KServe's own source at the version the cluster test installs (not from our code)."""
    root = module_dir(pinned("KSERVE_MODULE"), pinned("KSERVE_VERSION"))
    constants = (root / "pkg" / "constants" / "constants.go").read_text()
    assert re.search(rf'NetworkVisibility\s*=\s*"{re.escape(VISIBILITY)}"', constants)
    assert re.search(rf'ClusterLocalVisibility\s*=\s*"{re.escape(CLUSTER_LOCAL)}"', constants)
    rule = (REPO / "policies" / "conftest" / "environment" / "inferenceservice_route.rego").read_text()
    assert f'"{VISIBILITY}"' in rule
    assert f'"{CLUSTER_LOCAL}"' in rule
    ingress = root / "pkg" / "controller" / "v1beta1" / "inferenceservice" / "reconcilers" / "ingress"
    raw = (ingress / "kube_ingress_reconciler.go").read_text()
    spec = raw[raw.index("func createRawIngress") :].split("\nfunc ", 1)[0]
    assert "netv1.IngressSpec{" in spec
    assert "TLS" not in spec, "KServe sets TLS on its raw Ingress now: madeBy kserve + Ingress may be allowed"
    route = (ingress / "httproute_reconciler.go").read_text()
    assert "KserveIngressGateway" in route  # the HTTPRoute's parent is the Gateway the install configures
