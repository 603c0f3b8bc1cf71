"""mlplatform.mesh: the ALLOWs a mesh environment gets, from the spec (the rendered objects, the gate and the
apiserver's verdict are tests/tools/testcluster/test_mesh_environment.py's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlplatform.mesh import SIDECAR_RESOURCES, authorizations
from mlplatform.runtime_contract import GRPC_PORT, INFERENCE_PORT, REDIS_PORT
from mlplatform.synth import synthesize

from .conftest import REPO_ROOT, env_of


def _on_mesh(root: Path, edit_yaml: Any, env: str) -> None:
    def platform(data: dict[str, Any]) -> None:
        for name, peer in data["peers"].items():
            peer["serviceAccount"] = f"{name}-sa"

    edit_yaml(root / "overlays" / "platform.yaml", platform)

    def overlay(data: dict[str, Any]) -> None:
        data["mesh"] = "istio"
        for name, peer in (data.get("peers") or {}).items():  # where the overlay moves a peer
            peer["serviceAccount"] = f"{name}-here"

    edit_yaml(root / "overlays" / f"{env}.yaml", overlay)


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


def test_every_pod_on_the_mesh_sizes_its_sidecar_and_keeps_its_own_annotations(
    spec_copy: Path, edit_yaml: Any, tmp_path: Path
) -> None:
    """prod: its services' pods already carry the access policy's hash, which must stay."""
    _on_mesh(spec_copy, edit_yaml, "prod")
    out, off = tmp_path / "mesh", tmp_path / "off"
    synthesize(spec_copy, out=out)
    synthesize(REPO_ROOT, out=off)

    def templates(dist: Path) -> dict[str, dict[str, str]]:
        docs = (yaml.safe_load(p.read_text()) for p in sorted((dist / "prod").glob("*.yaml")))
        return {
            f"{d['kind']} {d['metadata']['name']}": d["spec"]["template"]["metadata"].get("annotations") or {}
            for d in docs
            if d["kind"] in ("Deployment", "StatefulSet")
        }

    mesh, before = templates(out), templates(off)
    assert sorted(mesh) == sorted(before) and len(mesh) >= 3, mesh  # inference, its canary, redis
    assert any(before.values()), "no pod of prod carries an annotation of its own: nothing to keep"
    for name, found in mesh.items():
        assert SIDECAR_RESOURCES.items() <= found.items(), name
        assert before[name].items() <= found.items(), name
