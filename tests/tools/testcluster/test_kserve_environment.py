"""`runtime: kserve` against the session's real kube-apiserver, with KServe's CRD from its pinned Go module.

No KServe controller runs here: the InferenceServices are only admitted (validated against the CRD's schema
and stored); nothing makes their Deployments, Services or pods, so there is nothing to scale or boot for
them. What this shows: the KServe render of prod (Gateway API, KEDA, a canary whose model comes from an https://
source: the model-source init container and its egress policy) and of stage (Ingress, HPA, the model-cache
PVC) is accepted as a whole, in Argo CD's order, and a predictor field the CRD does not know is
rejected by the apiserver as it would be in a cluster that runs KServe.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from mlplatform.spec.catalog import CATALOG_FILE
from mlplatform.synth import synthesize
from testcluster.apply import expected_warnings, install_crds, kinds_in
from testcluster.kubeapi import Kube
from testcluster.run import check_environment

from .conftest import REPO, first, write_env


@pytest.fixture(scope="module")
def kserve_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prod and stage with `runtime: kserve`, in namespaces of their own, rendered into a temporary dist/."""
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
        canary = data["services"]["inference"].get("canary")
        if canary:  # prod's canary serves a version fetched from an https:// URL (model-source, its egress)
            canary["models"] = [{"name": "breast-cancer", "version": "3"}, *canary["models"][1:]]
        for service in data["services"].values():
            service["host"] = f"kserve-{service['host']}"
        source.unlink()
        (root / "overlays" / f"k{env}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (root / "overlays" / "dev.yaml").unlink()
    out = tmp_path_factory.mktemp("kserve-dist") / "dist"
    synthesize(root, out=out)
    return out


def test_the_kserve_render_is_admitted(kube: Kube, kserve_dist: Path) -> None:
    install_crds(kube, kinds_in(kserve_dist))
    for env in ("kprod", "kstage"):
        result = check_environment(kube, kserve_dist / env, expected=expected_warnings(), boot_check=False)
        assert not result.folder.failures, "\n".join(result.folder.failures)
        applied = [m.obj for m in result.folder.applied]
        services = {o["metadata"]["name"] for o in applied if o["kind"] == "InferenceService"}
        assert services >= {"inference"}, env
        for name in services:
            stored = kube.get(
                "serving.kserve.io/v1beta1", "InferenceService", f"mlplatform-{env[1:]}-kserve", name
            )
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
