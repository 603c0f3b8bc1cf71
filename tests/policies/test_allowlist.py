"""The closed world's allow-list: read from overlays/ and the catalog, held against the admission policies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform import cluster_policies
from policy_check import allowlist, declared

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = REPO / "overlays"


def allowed(root: Path, env: str) -> dict[str, Any]:
    spec = declared.for_environment(root / "overlays", env)
    result: dict[str, Any] = spec["allowlist"]
    return result


def test_each_environment_allows_what_its_overlay_switches_on() -> None:
    dev, stage, prod = (allowed(REPO, env) for env in ("dev", "stage", "prod"))
    assert "Ingress" in dev["kinds"] and "HTTPRoute" not in dev["kinds"]
    assert "ServiceMonitor" not in dev["kinds"]
    # stage: HPA, a model-cache claim, jobs (KEDA and its TriggerAuthentication), a model image
    for kind in ("HorizontalPodAutoscaler", "PersistentVolumeClaim", "ScaledObject", "TriggerAuthentication"):
        assert kind in stage["kinds"], kind
    assert "ghcr.io/example/mlplatform-models" in stage["repositories"]
    assert "ghcr.io/example/mlplatform-models" not in dev["repositories"]
    assert set(stage["ports"]) == {"inference", "inference-worker", "redis", "jobs-redis"}
    # prod: the Gateway route, KEDA, the identity volume
    assert {"HTTPRoute", "ScaledObject"} <= set(prod["kinds"])
    assert "Ingress" not in prod["kinds"]
    assert "projected" in prod["volumeTypes"] and "projected" not in dev["volumeTypes"]
    for spec in (dev, stage, prod):
        assert spec["serviceTypes"] == ["ClusterIP"]
        assert "Role" not in spec["kinds"] and "Secret" not in spec["kinds"]


def test_a_refused_kind_says_what_the_spec_would_have_to_say() -> None:
    hints = allowed(REPO, "dev")["hints"]
    assert (
        hints["HTTPRoute"]
        == "to allow it, overlays/dev.yaml would have to say routing.kind: Gateway (made by the platform)"
    )
    assert "ServiceMonitor" in hints and "Ingress" not in hints
    assert hints["Role"].startswith("no field of the spec produces a Role")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(OVERLAYS, tmp_path / "overlays")
    catalog = tmp_path / allowlist.CATALOG_FILE
    catalog.parent.mkdir(parents=True)
    shutil.copy(REPO / allowlist.CATALOG_FILE, catalog)
    return tmp_path


def test_catalog_sources_extend_repositories_and_volumes(root: Path) -> None:
    catalog = root / allowlist.CATALOG_FILE
    data = json.loads(catalog.read_text())
    data["models"]["breast-cancer"]["1"]["source"] = {
        "kind": "oci",
        "reference": "registry.models.example:5000/ml/breast-cancer@sha256:" + "ab" * 32,
        "sha256": "cd" * 32,
    }
    data["models"]["minilm-embedding"]["1"]["source"] = {
        "kind": "pvc",
        "claim": "models",
        "path": "/m/minilm-1.tar",
        "sha256": "ef" * 32,
    }
    catalog.write_text(json.dumps(data))
    dev = allowed(root, "dev")
    assert "registry.models.example:5000/ml/breast-cancer" in dev["repositories"]
    assert "persistentVolumeClaim" in dev["volumeTypes"]


def test_a_new_service_declares_its_ports_and_repository(root: Path) -> None:
    platform = yaml.safe_load((root / "overlays/platform.yaml").read_text())
    platform["services"]["fraud"] = {**platform["services"]["inference"], "image": "ghcr.io/example/fraud"}
    (root / "overlays/platform.yaml").write_text(yaml.safe_dump(platform))
    stage = allowed(root, "stage")
    assert {"fraud", "fraud-worker"} <= set(stage["ports"])
    assert "ghcr.io/example/fraud" in stage["repositories"]


def _specs(root: Path) -> dict[str, dict[str, Any]]:
    return declared.for_environments(root / "overlays", declared.environments(root / "overlays"))


def test_admission_lists_are_the_union_of_the_environments() -> None:
    policies = cluster_policies.sources(REPO)
    assert {p.stem for p in policies} >= set(allowlist.ADMISSION_LISTS)
    assert allowlist.admission_drift(policies, _specs(REPO), complete=True) == []


def test_admission_list_wider_or_narrower_than_the_spec_is_a_finding(tmp_path: Path) -> None:
    source = REPO / "policies/kyverno/restrict-image-registries/restrict-image-registries.yaml"
    policy = tmp_path / source.name
    text = source.read_text()
    policy.write_text(text.replace("'ghcr.io/example/mlplatform-redis'", "'docker.io/library/busybox'"))
    found = allowlist.admission_drift([policy], _specs(REPO), complete=True)
    messages = sorted(f.message for f in found)
    assert len(messages) == 2 and {f.rule for f in found} == {allowlist.RULE}
    assert "allows 'docker.io/library/busybox'" in messages[0]
    assert (
        "lacks 'ghcr.io/example/mlplatform-redis', which overlays/ allows in dev, prod, stage" in messages[1]
    )
    # one environment checked alone: only what it needs is required, extras are not judged
    found = allowlist.admission_drift([policy], {"dev": _specs(REPO)["dev"]}, complete=False)
    assert [f.message.split(";")[0] for f in found] == [
        f"policies/kyverno/{source.parent.name}/{source.name}: variables.allowedRepositories lacks "
        "'ghcr.io/example/mlplatform-redis', which overlays/ allows in dev"
    ]


def test_admission_list_that_is_not_literal_is_a_finding(tmp_path: Path) -> None:
    source = REPO / "policies/kyverno/restrict-service-types/restrict-service-types.yaml"
    policy = tmp_path / source.name
    policy.write_text(source.read_text().replace("\"['ClusterIP']\"", "params.types"))
    found = allowlist.admission_drift([policy], _specs(REPO), complete=True)
    assert len(found) == 1 and "not a literal list of strings" in found[0].message
