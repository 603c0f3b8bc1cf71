"""mlplatform.mesh: the ALLOWs a mesh environment gets, from the spec (the rendered objects, the gate and the
apiserver's verdict are tests/tools/testcluster/test_mesh_environment.py's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplatform.mesh import authorizations
from mlplatform.runtime_contract import GRPC_PORT, INFERENCE_PORT, REDIS_PORT

from .conftest import env_of


def _on_mesh(root: Path, edit_yaml: Any, env: str) -> None:
    def platform(data: dict[str, Any]) -> None:
        for name, peer in data["peers"].items():
            peer["serviceAccount"] = f"{name}-sa"

    edit_yaml(root / "overlays" / "platform.yaml", platform)
    edit_yaml(root / "overlays" / f"{env}.yaml", lambda data: data.update(mesh="istio"))


def test_off_the_mesh_there_is_no_authorization(spec_copy: Path) -> None:
    assert authorizations(env_of(spec_copy, "stage")) == []


def test_each_connection_is_allowed_from_its_sources_identity_on_its_ports(
    spec_copy: Path, edit_yaml: Any
) -> None:
    _on_mesh(spec_copy, edit_yaml, "stage")
    env = env_of(spec_copy, "stage")
    found = {(a.source, a.target): a for a in authorizations(env)}
    ns = env.namespace
    ingress = found[("ingress-controller", "inference")]
    assert ingress.principal == "cluster.local/ns/ingress-nginx/sa/ingress-controller-sa"
    assert ingress.ports == (INFERENCE_PORT, GRPC_PORT)  # the one connection that says grpc: true
    assert found[("metrics-scraper", "inference")].ports == (INFERENCE_PORT,)
    # the API and its job worker are two identities: redis tells them apart
    assert found[("inference", "redis")].principal == f"cluster.local/ns/{ns}/sa/inference"
    assert found[("inference-worker", "redis")].principal == f"cluster.local/ns/{ns}/sa/inference-worker"
    assert found[("inference", "redis")].ports == (REDIS_PORT,)
    assert found[("inference", "redis")].selector == {"app.kubernetes.io/name": "redis"}
    assert len({a.name for a in found.values()}) == len(found)


def test_jobs_off_renders_no_jobs_authorization(spec_copy: Path, edit_yaml: Any) -> None:
    _on_mesh(spec_copy, edit_yaml, "dev")
    found = {(a.source, a.target) for a in authorizations(env_of(spec_copy, "dev"))}
    assert found == {
        ("ingress-controller", "inference"),
        ("metrics-scraper", "inference"),
        ("inference", "redis"),
    }
