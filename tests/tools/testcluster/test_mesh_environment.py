"""`mesh: istio` through the gate (`make check`'s engine, real conftest and Kyverno) and against the session's
real kube-apiserver, with Istio's security CRDs from their pinned Go module (istio.io/api).

No Istio control plane runs here: the PeerAuthentications and AuthorizationPolicies are only admitted
(validated against the CRDs' schemas and stored); nothing injects sidecars. What this shows: stage (jobs, so
workers and KEDA's operator connect) and prod (a Gateway, two Redis replicas replicating) on the mesh
render one ALLOW per connection the spec declares, on a deny-all, with STRICT mTLS; both pass the gate with
no finding and are accepted as a whole, in Argo CD's order; and the held-out mutants (an allow-all policy,
PERMISSIVE mTLS, a declared connection's policy removed) are each stopped by the rule named for it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.synth import synthesize
from testcluster.apply import expected_warnings, install_crds, kinds_in, load_folder
from testcluster.kubeapi import Kube
from testcluster.run import check_environment

from .conftest import REPO, env_findings, spec_copy

ENVS = {"mstage": "stage", "mprod": "prod"}
#: The peers' ServiceAccounts (their identity on the mesh), as their usual installs name them.
IDENTITIES = {
    "ingress-controller": "ingress-nginx",
    "metrics-scraper": "prometheus",
    "keda-operator": "keda-operator",
}
GATEWAY_IDENTITY = "public-istio"  # prod's Gateway, an Istio gateway deployment in gateway-system


#: Room for one sidecar per pod the quota allows, at the size the mesh's pods ask for (their sidecar.istio.io
#: annotations: 100m/500m CPU, 128Mi/256Mi memory; ephemeral storage from the LimitRange, 64Mi/256Mi).
SIDECAR = {
    "requestsCpu": 0.1,
    "limitsCpu": 0.5,
    "requestsMemory": 128,
    "limitsMemory": 256,
    "requestsEphemeralStorage": 64,
    "limitsEphemeralStorage": 256,
}


def _with_sidecars(quota: dict[str, Any]) -> dict[str, Any]:
    out = dict(quota)
    for key, each in SIDECAR.items():
        extra = each * int(quota["pods"])
        if key.endswith("Cpu"):
            out[key] = f"{float(quota[key]) + extra:g}"
        else:
            out[key] = f"{int(str(quota[key]).removesuffix('Gi')) * 1024 + int(extra)}Mi"
    return out


def _overlay(spec: Path, env: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((spec / "overlays" / f"{env}.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def mesh_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """overlays/ with stage and prod on the mesh (mstage, mprod), each in its own namespace."""
    root = tmp_path_factory.mktemp("mesh-spec")
    spec_copy(root)
    platform_path = root / "overlays" / "platform.yaml"
    platform = yaml.safe_load(platform_path.read_text())
    for name, account in IDENTITIES.items():
        platform["peers"][name]["serviceAccount"] = account
    platform_path.write_text(yaml.safe_dump(platform, sort_keys=False))
    for mesh_env, env in ENVS.items():
        data = _overlay(root, env)
        data.update(mesh="istio", namespace=f"{data['namespace']}-mesh")
        data["quota"] = _with_sidecars(data["quota"])
        for name, peer in (data.get("peers") or {}).items():  # prod moves the ingress peer to its Gateway
            peer["serviceAccount"] = GATEWAY_IDENTITY if name == "ingress-controller" else IDENTITIES[name]
        for service in data["services"].values():
            for key in ("host", "grpcHost"):
                if key in service:
                    service[key] = f"mesh-{service[key]}"
        (root / "overlays" / f"{env}.yaml").unlink()
        (root / "overlays" / f"{mesh_env}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (root / "overlays" / "dev.yaml").unlink()
    return root


@pytest.fixture(scope="module")
def mesh_dist(mesh_spec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mesh-dist") / "dist"
    synthesize(mesh_spec, out=out)
    return out


def _docs(dist: Path, env: str) -> list[dict[str, Any]]:
    return [m.obj for m in load_folder(dist / env)]


def _declared(spec: Path, env: str) -> set[tuple[str, str]]:
    """(from, to) of every connection the spec's YAML declares for env (jobs' only where jobs are on), and
    Redis replicating to itself where it runs more than one replica."""
    platform = yaml.safe_load((spec / "overlays" / "platform.yaml").read_text())
    overlay = _overlay(spec, env)
    jobs = {"jobs-redis", *(f"{s}-worker" for s in platform["services"])}
    jobs_on = (overlay.get("jobs") or {}).get("enabled", False)
    edges = {
        (c["from"], c["to"]) for c in platform["connections"] if jobs_on or not {c["from"], c["to"]} & jobs
    }
    if overlay["redis"].get("replicas", 1) > 1:
        edges.add(("redis", "redis"))
    return edges


@pytest.mark.parametrize("env", sorted(ENVS))
def test_one_allow_per_declared_connection_on_a_deny_all_with_strict_mtls(
    mesh_spec: Path, mesh_dist: Path, env: str
) -> None:
    docs = _docs(mesh_dist, env)
    overlay = _overlay(mesh_spec, env)
    policies = [d for d in docs if d["kind"] == "AuthorizationPolicy"]
    allows = [p for p in policies if p["spec"]]
    edges = _declared(mesh_spec, env)
    assert len(allows) == len(edges), (sorted(edges), [p["metadata"]["name"] for p in allows])
    assert [p["metadata"]["name"] for p in policies if not p["spec"]] == ["deny-all"]
    by_target: dict[str, list[str]] = {}
    for p in allows:
        (rule,) = p["spec"]["rules"]
        (principal,) = rule["from"][0]["source"]["principals"]
        target = p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        by_target.setdefault(target, []).append(principal)
    # the expected principal: a peer's declared ServiceAccount, or the one our workload runs as in dist/
    peers = {**yaml.safe_load((mesh_spec / "overlays" / "platform.yaml").read_text())["peers"]}
    peers |= overlay.get("peers") or {}
    accounts = {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]: d["spec"]["template"]["spec"][
            "serviceAccountName"
        ]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
    }
    for source, target in edges:
        if source in peers:
            want = f"cluster.local/ns/{peers[source]['namespace']}/sa/{peers[source]['serviceAccount']}"
        else:
            want = f"cluster.local/ns/{overlay['namespace']}/sa/{accounts[source]}"
        assert by_target[target].count(want) == 1, (source, target, by_target[target])
    assert len(set(accounts.values())) == len(accounts), f"two workloads share an identity: {accounts}"
    (mtls,) = [d for d in docs if d["kind"] == "PeerAuthentication"]
    assert mtls["spec"] == {"mtls": {"mode": "STRICT"}}
    (namespace,) = [d for d in docs if d["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["istio-injection"] == "enabled"
    # Pod Security stays restricted (istio-cni sets up the redirect; no init container with NET_ADMIN is ours)
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    istiod = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "allow-istiod"]
    assert istiod and istiod[0]["spec"]["egress"][0]["ports"] == [{"port": 15012, "protocol": "TCP"}]


def test_the_environments_project_allows_the_mesh_kinds(mesh_dist: Path) -> None:
    """Argo CD syncs only the kinds the AppProject lists: the mesh's, since an environment uses them."""
    name = yaml.safe_load((REPO / "overlays" / "platform.yaml").read_text())["argocd"]["project"]
    (project,) = [
        d for d in _docs(mesh_dist, "argocd") if d["kind"] == "AppProject" and d["metadata"]["name"] == name
    ]
    allowed = {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]}
    used = {(str(d["apiVersion"]).split("/")[0], d["kind"]) for env in ENVS for d in _docs(mesh_dist, env)}
    assert {
        ("security.istio.io", "AuthorizationPolicy"),
        ("security.istio.io", "PeerAuthentication"),
    } <= allowed
    assert {k for k in used if k[0] == "security.istio.io"} <= allowed


@pytest.mark.parametrize("env", sorted(ENVS))
def test_the_mesh_render_passes_the_gate(mesh_spec: Path, mesh_dist: Path, env: str, tmp_path: Path) -> None:
    assert env_findings(mesh_spec, mesh_dist, env, tmp_path) == []


def _mutate(dist: Path, env: str, tmp_path: Path, change: Any) -> Path:
    out = tmp_path / "dist"
    shutil.copytree(dist / env, out / env)
    for path in sorted((out / env).glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        changed = change(doc)
        if changed is None:
            path.unlink()
        else:
            path.write_text(yaml.safe_dump(changed, sort_keys=False))
    return out


def _allow_all(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "AuthorizationPolicy" and doc["metadata"]["name"] == "deny-all":
        doc["spec"] = {"action": "ALLOW", "rules": [{}]}
    return doc


def _permissive(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "PeerAuthentication":
        doc["spec"]["mtls"]["mode"] = "PERMISSIVE"
    return doc


def _drop_redis_edge(doc: dict[str, Any]) -> dict[str, Any] | None:
    dropped = doc["kind"] == "AuthorizationPolicy" and doc["metadata"]["name"] == "allow-redis-from-inference"
    return None if dropped else doc


@pytest.mark.parametrize(
    ("mutant", "rule", "names"),
    [
        (_allow_all, "mesh-no-open-allow", "allow-all"),
        (_allow_all, "mesh-authorization", "no deny-all"),
        (_permissive, "mesh-strict-mtls", "PERMISSIVE"),
        (_drop_redis_edge, "mesh-authorization", "inference -> redis"),
    ],
    ids=["allow-all", "allow-all-loses-the-deny-all", "permissive", "missing-edge"],
)
def test_held_out_mutants_are_stopped_by_their_rule(
    mesh_spec: Path, mesh_dist: Path, tmp_path: Path, mutant: Any, rule: str, names: str
) -> None:
    dist = _mutate(mesh_dist, "mstage", tmp_path, mutant)
    found = env_findings(mesh_spec, dist, "mstage", tmp_path)
    hits = [f for f in found if f.startswith(f"{rule}: ") and (names in f or names == "allow-all")]
    assert hits, found


def test_a_quota_without_room_for_the_sidecars_is_refused(
    mesh_spec: Path, mesh_dist: Path, tmp_path: Path
) -> None:
    """stage's own quota (sized for its containers alone): at peak the sidecars no longer fit."""
    committed = yaml.safe_load((REPO / "overlays" / "stage.yaml").read_text())["quota"]

    def own_quota(doc: dict[str, Any]) -> dict[str, Any]:
        if doc["kind"] == "ResourceQuota":
            doc["spec"]["hard"]["limits.cpu"] = str(committed["limitsCpu"])
        return doc

    found = env_findings(mesh_spec, _mutate(mesh_dist, "mstage", tmp_path, own_quota), "mstage", tmp_path)
    assert [f for f in found if f.startswith("quota-admits-max-scale: ") and "limits.cpu" in f], found


def test_the_mesh_render_is_admitted(kube: Kube, mesh_dist: Path) -> None:
    install_crds(kube, kinds_in(mesh_dist))
    for env in sorted(ENVS):
        result = check_environment(kube, mesh_dist / env, expected=expected_warnings(), boot_check=False)
        assert not result.folder.failures, "\n".join(result.folder.failures)
        applied = [m.obj for m in result.folder.applied]
        namespace = next(o["metadata"]["name"] for o in applied if o["kind"] == "Namespace")
        stored = kube.list("security.istio.io/v1", "AuthorizationPolicy", namespace)
        assert len(stored) == len([o for o in applied if o["kind"] == "AuthorizationPolicy"]) > 1
        strict = kube.get("security.istio.io/v1", "PeerAuthentication", namespace, "default")
        assert strict is not None and strict["spec"]["mtls"]["mode"] == "STRICT"


def test_a_mode_the_crd_lacks_is_rejected(kube: Kube, mesh_dist: Path, tmp_path: Path) -> None:
    install_crds(kube, kinds_in(mesh_dist))

    def stricter(doc: dict[str, Any]) -> dict[str, Any]:
        if doc["kind"] == "PeerAuthentication":
            doc["spec"]["mtls"]["mode"] = "STRICTER"
        text = yaml.safe_dump(doc).replace("mlplatform-stage-mesh", "mesh-mutant")
        changed: dict[str, Any] = yaml.safe_load(text)
        return changed

    dist = _mutate(mesh_dist, "mstage", tmp_path, stricter)
    result = check_environment(kube, dist / "mstage", expected=expected_warnings(), boot_check=False)
    assert any("PeerAuthentication" in f and "STRICTER" in f for f in result.folder.failures), (
        result.folder.failures
    )
