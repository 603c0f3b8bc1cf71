"""Break a known-good dist/ one way at a time and assert the check rejects every break, naming the rule.

All mutations run in one batch: each gets its own copy of a base environment (stage, which has an Ingress
and an HPA, or prod, which has the canary, KEDA, the HTTPRoute and the PDBs) as a separate folder of one
temporary dist/, so one check run covers them. Each folder is checked with its base environment's
declarations from overlays/ and under its name (so the prod-only rules apply to prod copies).
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from policy_check import declared, runner
from policy_check.cache import Cache
from tests.support.manifests import first as find

REPO = Path(__file__).resolve().parents[2]
Docs = dict[str, list[dict[str, Any]]]  # file name -> documents


def inference(docs: Docs) -> dict[str, Any]:
    return find(docs, "Deployment", "inference")


def container(docs: Docs) -> dict[str, Any]:
    c: dict[str, Any] = inference(docs)["spec"]["template"]["spec"]["containers"][0]
    return c


def pod(docs: Docs) -> dict[str, Any]:
    p: dict[str, Any] = inference(docs)["spec"]["template"]["spec"]
    return p


def redis(docs: Docs) -> dict[str, Any]:
    c: dict[str, Any] = find(docs, "StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    return c


def add(docs: Docs, doc: dict[str, Any]) -> None:
    docs.setdefault("zz-mutation.yaml", []).append(doc)


def drop(docs: Docs, keep: Callable[[dict[str, Any]], bool]) -> None:
    for file in docs:
        docs[file] = [d for d in docs[file] if keep(d)]


def namespace(docs: Docs) -> str:
    return str(inference(docs)["metadata"]["namespace"])


def is_default_deny(d: dict[str, Any]) -> bool:
    spec = d.get("spec") or {}
    return d.get("kind") == "NetworkPolicy" and not spec.get("podSelector") and not spec.get("ingress")


def netpol(docs: Docs, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace(docs)}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": spec}


def set_sc(field: str, value: Any) -> Callable[[Docs], None]:
    return lambda docs: container(docs)["securityContext"].__setitem__(field, value)


def set_pod_sc(field: str, value: Any) -> Callable[[Docs], None]:
    return lambda docs: pod(docs).setdefault("securityContext", {}).__setitem__(field, value)


def image_tag(tag: str) -> Callable[[Docs], None]:
    return lambda docs: container(docs).__setitem__("image", container(docs)["image"].split("@")[0] + tag)


def worker(docs: Docs) -> dict[str, Any]:
    """The job worker's container (stage enables jobs)."""
    c: dict[str, Any] = find(docs, "Deployment", "inference-worker")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return c


def worker_to_api(docs: Docs) -> None:
    """The worker may reach Redis only: both ends opened for worker -> API is an undeclared flow."""
    worker_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "inference-worker"}}}
    api_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "inference"}}}
    ports = [{"port": 8080, "protocol": "TCP"}]
    egress = {**worker_pods, "policyTypes": ["Egress"], "egress": [{"to": [api_pods], "ports": ports}]}
    ingress = {**api_pods, "policyTypes": ["Ingress"], "ingress": [{"from": [worker_pods], "ports": ports}]}
    add(docs, netpol(docs, "allow-inference-worker-to-inference", egress))
    add(docs, netpol(docs, "allow-inference-from-inference-worker", ingress))


def drop_pdbs(docs: Docs) -> None:
    drop(docs, lambda d: d.get("kind") != "PodDisruptionBudget")


def undeclared_egress(docs: Docs) -> None:
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "attacker"}}}
    spec = {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [{"to": [peer], "ports": [{"port": 443}]}],
    }
    add(docs, netpol(docs, "allow-exfil", spec))


def redis_on_every_port(docs: Docs) -> None:
    for name, direction in (
        ("allow-inference-to-redis", "egress"),
        ("allow-redis-from-inference", "ingress"),
    ):
        find(docs, "NetworkPolicy", name)["spec"][direction][0].pop("ports")


def namespace_wide_ingress(docs: Docs) -> None:
    np = find(docs, "NetworkPolicy", "allow-inference-from-ingress-controller")
    np["spec"]["ingress"][0]["from"][0].pop("podSelector")


def edit_conf(docs: Docs, config: str, edit: Callable[[str], str]) -> None:
    cm = find(docs, "ConfigMap", config)
    cm["data"]["redis.conf"] = edit(cm["data"]["redis.conf"])


def redis_conf(docs: Docs, edit: Callable[[str], str]) -> None:
    edit_conf(docs, "redis-config", edit)


def maxmemory(value: str) -> Callable[[str], str]:
    def edit(conf: str) -> str:
        lines = [f"maxmemory {value}" if ln.startswith("maxmemory ") else ln for ln in conf.splitlines()]
        return "\n".join(lines) + "\n"

    return edit


def no_maxmemory(conf: str) -> str:
    return "\n".join(ln for ln in conf.splitlines() if not ln.startswith("maxmemory ")) + "\n"


def volume(spec: dict[str, Any]) -> Callable[[Docs], None]:
    return lambda docs: pod(docs).setdefault("volumes", []).append({"name": "extra", **spec})


@dataclass(frozen=True)
class Break:
    mutate: Callable[[Docs], None]
    rule: str  # the rule the check must name
    base: str = "stage"


STAGE, PROD = "stage", "prod"
RESULT_BOUND = "INFERENCE_JOBS_MAX_RESULT_BYTES"

MUTATIONS: dict[str, Break] = {
    # per-object rules (Kyverno)
    "latest-tag": Break(image_tag(":latest"), "require-image-digest"),
    "tag-without-digest": Break(image_tag(":1.2.3"), "require-image-digest"),
    "missing-limits": Break(lambda d: container(d)["resources"].pop("limits"), "require-resources"),
    "missing-ephemeral-storage": Break(
        lambda d: container(d)["resources"]["requests"].pop("ephemeral-storage"), "require-resources"
    ),
    "missing-cpu-request": Break(
        lambda d: container(d)["resources"]["requests"].pop("cpu"), "require-resources"
    ),
    "token-automount": Break(
        lambda d: pod(d).__setitem__("automountServiceAccountToken", True), "disable-token-automount"
    ),
    "missing-readiness-probe": Break(lambda d: container(d).pop("readinessProbe"), "require-probes"),
    "missing-liveness-probe": Break(lambda d: container(d).pop("livenessProbe"), "require-probes"),
    "writable-root-filesystem": Break(
        set_sc("readOnlyRootFilesystem", False), "require-read-only-root-filesystem"
    ),
    # the upstream Restricted profile (Kyverno's pod security)
    "privileged": Break(set_sc("privileged", True), "pod-security"),
    "privilege-escalation": Break(set_sc("allowPrivilegeEscalation", True), "pod-security"),
    "root-user": Break(set_sc("runAsUser", 0), "pod-security"),
    "run-as-non-root-false": Break(set_pod_sc("runAsNonRoot", False), "pod-security"),
    "added-capability": Break(
        set_sc("capabilities", {"drop": ["ALL"], "add": ["NET_ADMIN"]}), "pod-security"
    ),
    "capabilities-not-dropped": Break(set_sc("capabilities", {}), "pod-security"),
    "seccomp-unconfined": Break(set_sc("seccompProfile", {"type": "Unconfined"}), "pod-security"),
    "forbidden-sysctl": Break(
        set_pod_sc("sysctls", [{"name": "kernel.msgmax", "value": "65536"}]), "pod-security"
    ),
    "proc-mount-unmasked": Break(set_sc("procMount", "Unmasked"), "pod-security"),
    "apparmor-unconfined": Break(set_sc("appArmorProfile", {"type": "Unconfined"}), "pod-security"),
    "selinux-custom-type": Break(set_sc("seLinuxOptions", {"type": "spc_t"}), "pod-security"),
    "host-path": Break(volume({"hostPath": {"path": "/"}}), "pod-security"),
    "nfs-volume": Break(volume({"nfs": {"server": "10.0.0.1", "path": "/export"}}), "pod-security"),
    "host-network": Break(lambda d: pod(d).__setitem__("hostNetwork", True), "pod-security"),
    "host-pid": Break(lambda d: pod(d).__setitem__("hostPID", True), "pod-security"),
    "host-ipc": Break(lambda d: pod(d).__setitem__("hostIPC", True), "pod-security"),
    "host-port": Break(lambda d: container(d)["ports"][0].__setitem__("hostPort", 8080), "pod-security"),
    # network isolation, from the NetworkPolicies alone against overlays/
    "default-deny-removed": Break(lambda d: drop(d, lambda x: not is_default_deny(x)), "network-isolation"),
    "allow-all-ingress": Break(
        lambda d: add(d, netpol(d, "allow-all", {"podSelector": {}, "ingress": [{}]})), "no-allow-all"
    ),
    "undeclared-egress": Break(undeclared_egress, "network-isolation"),
    "declared-flow-blocked": Break(
        lambda d: drop(d, lambda x: x["metadata"].get("name") != "allow-redis-from-inference"),
        "network-isolation",
    ),
    "redis-on-every-port": Break(redis_on_every_port, "network-isolation"),
    # asynchronous jobs (stage): the worker reaches Redis only, KEDA must reach the jobs Redis
    "worker-to-api": Break(worker_to_api, "network-isolation"),
    "keda-cannot-read-the-queue": Break(
        lambda d: drop(d, lambda x: x["metadata"].get("name") != "allow-jobs-redis-from-keda-operator"),
        "network-isolation",
    ),
    "worker-max-over-quota": Break(
        lambda d: find(d, "ScaledObject", "inference-worker")["spec"].__setitem__("maxReplicaCount", 40),
        "quota-admits-max-scale",
    ),
    "worker-missing-readiness-probe": Break(lambda d: worker(d).pop("readinessProbe"), "require-probes"),
    "namespace-wide-ingress-peer": Break(namespace_wide_ingress, "network-isolation"),
    # other rules on one environment
    "plaintext-secret": Break(
        lambda d: add(
            d,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "leak", "namespace": namespace(d)},
                "stringData": {"password": "hunter2"},
            },
        ),
        "no-secret-data",
    ),
    "ingress-without-tls": Break(lambda d: find(d, "Ingress")["spec"].pop("tls"), "ingress-tls"),
    "hpa-with-fixed-replicas": Break(
        lambda d: inference(d)["spec"].__setitem__("replicas", 2), "hpa-targets-workload"
    ),
    "hpa-missing-target": Break(
        lambda d: find(d, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"].__setitem__("name", "gone"),
        "hpa-targets-workload",
    ),
    "service-selector-typo": Break(
        lambda d: find(d, "Service", "inference")["spec"].__setitem__("selector", {"app": "typo"}),
        "service-selects-workload",
    ),
    "kustomization-in-dist": Break(
        lambda d: d.__setitem__(
            "kustomization.yaml",
            [{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": []}],
        ),
        "argocd-readable-files",
    ),
    # what a cluster would refuse or break on (issue 10's classes, caught before merge)
    "limit-below-request": Break(
        lambda d: container(d)["resources"]["limits"].__setitem__("memory", "256Mi"), "limits-cover-requests"
    ),
    "quota-exhausted-at-max-replicas": Break(
        lambda d: find(d, "HorizontalPodAutoscaler")["spec"].__setitem__("maxReplicas", 30),
        "quota-admits-max-scale",
    ),
    "quota-exhausted-by-surge": Break(
        lambda d: inference(d)["spec"]["strategy"]["rollingUpdate"].__setitem__("maxSurge", "100%"),
        "quota-admits-max-scale",
    ),
    "keda-max-over-quota": Break(
        lambda d: find(d, "ScaledObject")["spec"].__setitem__("maxReplicaCount", 30),
        "quota-admits-max-scale",
        PROD,
    ),
    "redis-maxmemory-at-limit": Break(
        lambda d: redis(d)["resources"]["limits"].__setitem__("memory", "256Mi"), "redis-maxmemory-headroom"
    ),
    "redis-maxmemory-unset": Break(lambda d: redis_conf(d, no_maxmemory), "redis-maxmemory-headroom"),
    "redis-maxmemory-too-big": Break(
        lambda d: redis_conf(d, maxmemory("2gb")), "redis-maxmemory-headroom", PROD
    ),
    "jobs-redis-short-of-queue": Break(
        lambda d: edit_conf(d, "jobs-redis-config", maxmemory("256mb")), "jobs-redis-holds-queue"
    ),
    "jobs-workers-past-store": Break(
        lambda d: find(d, "ScaledObject", "inference-worker")["spec"].__setitem__("maxReplicaCount", 4),
        "jobs-redis-holds-queue",
    ),
    "jobs-result-bound-unset": Break(
        lambda d: find(d, "ConfigMap", "inference-worker-config")["data"].pop(RESULT_BOUND),
        "jobs-redis-holds-queue",
    ),
    "single-replica-in-prod": Break(
        lambda d: find(d, "ScaledObject")["spec"].__setitem__("minReplicaCount", 1), "prod-replicas", PROD
    ),
    "missing-pdb-in-prod": Break(drop_pdbs, "prod-pdb", PROD),
    "pdb-blocks-drain": Break(
        lambda d: find(d, "PodDisruptionBudget", "inference")["spec"].__setitem__("maxUnavailable", 0),
        "prod-pdb",
        PROD,
    ),
    # custom resources against their CRDs' schemas
    "scaledobject-unknown-field": Break(
        lambda d: find(d, "ScaledObject")["spec"].__setitem__("pollingIntervall", 15), "crd-schema", PROD
    ),
    "httproute-weight-not-integer": Break(
        lambda d: find(d, "HTTPRoute")["spec"]["rules"][0]["backendRefs"][0].__setitem__("weight", "ninety"),
        "crd-schema",
        PROD,
    ),
    "externalsecret-wrong-type": Break(
        lambda d: find(d, "ExternalSecret")["spec"].__setitem__("refreshInterval", 60), "crd-schema"
    ),
    "servicemonitor-unknown-endpoint-field": Break(
        lambda d: find(d, "ServiceMonitor")["spec"]["endpoints"][0].__setitem__("scrapeEvery", "30s"),
        "crd-schema",
    ),
}


def load_env(folder: Path) -> Docs:
    docs: Docs = {}
    for f in sorted(folder.iterdir()):
        if f.suffix in (".yaml", ".yml", ".json"):
            docs[f.name] = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
    return docs


def write_env(folder: Path, docs: Docs) -> None:
    folder.mkdir(parents=True)
    for name, ds in docs.items():
        (folder / name).write_text(yaml.safe_dump_all(ds, sort_keys=False))


def folder_of(name: str) -> str:
    return f"m-{name}"


@dataclass
class Mutated:
    """The mutation suite's dist/ and the check's outcome on it (engines in parallel, a cold cache)."""

    dist: Path
    specs: dict[str, dict[str, Any]]
    waivers: Path
    cache: Path
    outcome: runner.Outcome


@pytest.fixture(scope="module")
def mutated(tmp_path_factory: pytest.TempPathFactory, base_dist: Any, tools: Any) -> Mutated:
    source, _ = base_dist
    bases = {env: load_env(source / env) for env in (STAGE, PROD)}
    out = tmp_path_factory.mktemp("mutated") / "dist"
    out.mkdir()
    specs = {}
    for name, brk in {**MUTATIONS, **VALID}.items():
        docs = copy.deepcopy(bases[brk.base])
        brk.mutate(docs)
        write_env(out / folder_of(name), docs)
        specs[folder_of(name)] = declared.for_environment(REPO / "overlays", brk.base)
    shutil.copytree(source / "argocd", out / "argocd")
    app = next(p for p in sorted((out / "argocd").iterdir()) if "kind: Application" in p.read_text())
    app.write_text(app.read_text().replace("path: dist/", "path: dist/renamed-"))
    waivers = out.parent / "exceptions.yaml"
    waivers.write_text("waivers: []\n")
    cache_dir = out.parent / "cache"
    outcome = runner.run(
        repo_root=REPO,
        dist_dir=out,
        tools=tools,
        waiver_file=waivers,
        only_env=None,
        specs=specs,
        jobs=2,
        cache=Cache(cache_dir, REPO, [tools.kyverno, tools.conftest]),
    )
    return Mutated(out, specs, waivers, cache_dir, outcome)


@pytest.fixture(scope="module")
def batch(mutated: Mutated) -> dict[str, set[str]]:
    caught: dict[str, set[str]] = {}
    for f in mutated.outcome.findings:
        caught.setdefault(f.environment, set()).add(f.rule)
    return caught


def test_unbroken_copies_pass(tmp_path: Path, base_dist: Any, tools: Any) -> None:
    """The base copies themselves pass, so each break below is what the check reacts to."""
    source, _ = base_dist
    out = tmp_path / "dist"
    for env in (STAGE, PROD):
        write_env(out / f"m-{env}", load_env(source / env))
    (tmp_path / "exceptions.yaml").write_text("waivers: []\n")
    specs = {f"m-{env}": declared.for_environment(REPO / "overlays", env) for env in (STAGE, PROD)}
    outcome = runner.run(
        repo_root=REPO,
        dist_dir=out,
        tools=tools,
        waiver_file=tmp_path / "exceptions.yaml",
        only_env=None,
        specs=specs,
    )
    assert [f.describe() for f in outcome.findings] == []


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_is_rejected_naming_the_rule(batch: dict[str, set[str]], name: str) -> None:
    rule = MUTATIONS[name].rule
    got = batch.get(folder_of(name), set())
    assert rule in got, f"{name}: expected {rule}, got {sorted(got)}"


def test_renamed_argocd_path_is_rejected(batch: dict[str, set[str]]) -> None:
    assert "argocd-paths" in batch.get("argocd", set())


def test_print_count_caught(batch: dict[str, set[str]], capsys: pytest.CaptureFixture[str]) -> None:
    caught = [n for n, brk in MUTATIONS.items() if brk.rule in batch.get(folder_of(n), set())]
    caught += ["argocd-renamed-path"] if "argocd-paths" in batch.get("argocd", set()) else []
    with capsys.disabled():  # shown in every `make test` run, not only on failure
        print(f"\nmutation suite: {len(caught)} of {len(MUTATIONS) + 1} kinds of break caught")
    assert len(MUTATIONS) + 1 >= 45
    assert len(caught) == len(MUTATIONS) + 1


# --- Kyverno-caught breaks (added by the Kyverno half of issue 11) ---
def _init(docs: Docs) -> dict[str, Any]:
    c: dict[str, Any] = pod(docs)["initContainers"][0]
    return c


def _unmanaged(docs: Docs) -> None:
    labels = find(docs, "Namespace")["metadata"]["labels"]
    labels.pop("mlplatform.io/managed")


MUTATIONS.update(
    {
        # the cluster policies would not select the namespace: neither the check nor admission would look
        "namespace-not-managed": Break(_unmanaged, "cluster-policies-scope"),
        "init-container-tag": Break(
            lambda d: _init(d).__setitem__("image", _init(d)["image"].split("@")[0] + ":1.2.3"),
            "require-image-digest",
        ),
        "init-container-writable-root": Break(
            lambda d: _init(d)["securityContext"].__setitem__("readOnlyRootFilesystem", False),
            "require-read-only-root-filesystem",
        ),
        "init-container-without-limits": Break(
            lambda d: _init(d)["resources"].pop("limits"), "require-resources"
        ),
        "selinux-user": Break(set_pod_sc("seLinuxOptions", {"user": "system_u"}), "pod-security"),
        "windows-host-process": Break(set_sc("windowsOptions", {"hostProcess": True}), "pod-security"),
    }
)


# --- the closed world (issue 32) and issue 25's two breaks: each class in stage and in prod ---
OTHER_DIGEST = "@sha256:" + "ab" * 32


def service(docs: Docs) -> dict[str, Any]:
    return find(docs, "Service", "inference")


def rbac_role(docs: Docs) -> None:
    """A Role and its binding: kinds the spec never produces."""
    meta = {"name": "secret-reader", "namespace": namespace(docs)}
    rule = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}
    add(
        docs,
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": [rule]},
    )


def service_type(kind: str) -> Callable[[Docs], None]:
    return lambda docs: service(docs)["spec"].__setitem__("type", kind)


def external_name(docs: Docs) -> None:
    spec = service(docs)["spec"]
    spec.clear()
    spec.update({"type": "ExternalName", "externalName": "collector.attacker.example"})


def projected_token(docs: Docs) -> None:
    source = {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}
    pod(docs)["volumes"].append({"name": "api-token", "projected": {"sources": [source]}})


def env_literal(name: str, value: str) -> Callable[[Docs], None]:
    return lambda docs: container(docs).setdefault("env", []).append({"name": name, "value": value})


def target_port(value: Any) -> Callable[[Docs], None]:
    return lambda docs: service(docs)["spec"]["ports"][0].__setitem__("targetPort", value)


def probe_port(value: Any) -> Callable[[Docs], None]:
    return lambda docs: container(docs)["readinessProbe"]["httpGet"].__setitem__("port", value)


def undeclared_workload(docs: Docs) -> None:
    """A second Deployment of a component the spec does not declare (the service's own pod spec)."""
    miner = copy.deepcopy(inference(docs))
    miner["metadata"] = {
        "name": "miner",
        "namespace": namespace(docs),
        "labels": {"app.kubernetes.io/name": "miner"},
    }
    miner["spec"]["selector"] = {"matchLabels": {"app.kubernetes.io/name": "miner"}}
    miner["spec"]["template"]["metadata"]["labels"] = {"app.kubernetes.io/name": "miner"}
    add(docs, miner)


def default_deny_types(types: list[str]) -> Callable[[Docs], None]:
    return lambda docs: find(docs, "NetworkPolicy", "default-deny")["spec"].__setitem__("policyTypes", types)


def egress_open(docs: Docs) -> None:
    """The default deny without Egress and no other policy selecting every pod for egress: all egress open."""
    default_deny_types(["Ingress"])(docs)
    drop(docs, lambda d: d["metadata"].get("name") != "allow-dns")


CLOSED_WORLD: dict[str, tuple[Callable[[Docs], None], str]] = {
    # kinds the spec never produces
    "rbac-role": (rbac_role, "allowed-kinds"),
    "node-port-service": (service_type("NodePort"), "restrict-service-types"),
    "load-balancer-service": (service_type("LoadBalancer"), "restrict-service-types"),
    "external-name-service": (external_name, "restrict-service-types"),
    "external-ips": (
        lambda d: service(d)["spec"].__setitem__("externalIPs", ["203.0.113.7"]),
        "restrict-service-types",
    ),
    "undeclared-workload": (undeclared_workload, "declared-workloads"),
    "undeclared-container-port": (
        lambda d: container(d)["ports"].append({"name": "debug", "containerPort": 5005, "protocol": "TCP"}),
        "declared-workloads",
    ),
    # images from registries the spec does not name
    "image-from-unnamed-registry": (
        lambda d: container(d).__setitem__("image", "quay.io/attacker/inference" + OTHER_DIGEST),
        "restrict-image-registries",
    ),
    "lookalike-repository": (
        lambda d: container(d).__setitem__(
            "image", container(d)["image"].split("@")[0] + "-debug" + OTHER_DIGEST
        ),
        "restrict-image-registries",
    ),
    # credentials past the spec's settings
    "projected-token-volume": (projected_token, "disable-token-automount"),
    "password-env-literal": (env_literal("REDIS_PASSWORD", "hunter2"), "no-credential-env-literals"),
    "url-with-password-env-literal": (
        env_literal("CACHE_URL", "redis://default:hunter2@redis:6379/0"),
        "no-credential-env-literals",
    ),
    "csi-volume": (
        volume({"csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": True}}),
        "restrict-volume-types",
    ),
    # references that resolve to nothing
    "target-port-names-nothing": (target_port("metrics"), "ports-resolve"),
    "target-port-number-undeclared": (target_port(9090), "ports-resolve"),
    "probe-port-names-nothing": (probe_port("healthz"), "ports-resolve"),
    # issue 25 point 6: the default deny loses Egress
    "default-deny-without-egress": (default_deny_types(["Ingress"]), "default-deny"),
    "egress-open-to-everywhere": (egress_open, "network-isolation"),
}
for _name, (_mutate, _rule) in CLOSED_WORLD.items():
    MUTATIONS[_name] = Break(_mutate, _rule, STAGE)
    MUTATIONS[f"{_name}-prod"] = Break(_mutate, _rule, PROD)

CLOSED_WORLD_NAMES = sorted(n for base in CLOSED_WORLD for n in (base, f"{base}-prod"))


@pytest.mark.parametrize("name", CLOSED_WORLD_NAMES)
def test_closed_world_break_is_rejected_naming_the_rule(batch: dict[str, set[str]], name: str) -> None:
    test_mutation_is_rejected_naming_the_rule(batch, name)


#: Changes the closed world must let through: each folder must pass with no finding at all.
VALID: dict[str, Break] = {
    "target-port-by-existing-number": Break(target_port(8080), ""),
    "probe-port-by-existing-number": Break(probe_port(8080), ""),
    "model-image-from-a-named-repository": Break(
        lambda d: _init(d).__setitem__("image", _init(d)["image"].split("@")[0] + OTHER_DIGEST), ""
    ),
    "setting-env-literal": Break(env_literal("INFERENCE_LOG_LEVEL", "debug"), ""),
    "credential-file-path-env-literal": Break(
        env_literal("INFERENCE_API_KEYS_FILE", "/etc/inference/api-keys/api-keys"), ""
    ),
    "headless-service": Break(lambda d: service(d)["spec"].__setitem__("clusterIP", "None"), ""),
}
for _name in list(VALID):
    VALID[f"{_name}-prod"] = dataclasses.replace(VALID[_name], base=PROD)
# prod's pods have no init container (models in the image): its model image is the service image
VALID["model-image-from-a-named-repository-prod"] = Break(
    lambda d: container(d).__setitem__("image", container(d)["image"].split("@")[0] + OTHER_DIGEST), "", PROD
)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_change_passes(batch: dict[str, set[str]], name: str) -> None:
    got = batch.get(folder_of(name), set())
    assert got == set(), f"{name}: a change the spec allows was refused by {sorted(got)}"


def test_findings_do_not_depend_on_scheduling_or_cache(mutated: Mutated, tools: Any) -> None:
    """The same findings, to the message and line, whether the engines run one process at a time with no
    cache, in parallel, or from the cache of the parallel run (bench/check_bench.py --ref compares two
    revisions of the gate on the same trees)."""

    def again(jobs: int, cache: Cache | None) -> runner.Outcome:
        return runner.run(
            repo_root=REPO,
            dist_dir=mutated.dist,
            tools=tools,
            waiver_file=mutated.waivers,
            only_env=None,
            specs=mutated.specs,
            jobs=jobs,
            cache=cache,
        )

    assert len(mutated.outcome.findings) > len(MUTATIONS)
    serial = again(1, None)
    assert serial.findings == mutated.outcome.findings
    assert serial.waived == mutated.outcome.waived
    warm = again(2, Cache(mutated.cache, REPO, [tools.kyverno, tools.conftest]))
    assert warm.findings == mutated.outcome.findings
    # every folder came from the cache: the entries are the ones the parallel run wrote
    assert len(list((mutated.cache / "findings").iterdir())) == len(mutated.outcome.rules) - 1
