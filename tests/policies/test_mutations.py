"""Break a known-good dist/ one way at a time and assert the check rejects every break, naming the rule.

All mutations run in one batch: each gets its own copy of the base environment as a separate folder of
one temporary dist/, so one check run (one kyverno apply and one conftest run per folder) covers them.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from policy_check import dist, runner

Docs = dict[str, list[dict[str, Any]]]  # file name -> documents


def first(docs: Docs, kind: str) -> dict[str, Any]:
    for file in sorted(docs):
        for d in docs[file]:
            if d.get("kind") == kind:
                return d
    raise LookupError(kind)


def workload(docs: Docs) -> dict[str, Any]:
    return first(docs, "Deployment")


def container(docs: Docs) -> dict[str, Any]:
    c: dict[str, Any] = workload(docs)["spec"]["template"]["spec"]["containers"][0]
    return c


def pod(docs: Docs) -> dict[str, Any]:
    p: dict[str, Any] = workload(docs)["spec"]["template"]["spec"]
    return p


def add(docs: Docs, doc: dict[str, Any]) -> None:
    docs.setdefault("zz-mutation.yaml", []).append(doc)


def namespace(docs: Docs) -> str:
    return str(workload(docs)["metadata"]["namespace"])


def drop_default_deny(docs: Docs) -> None:
    for file in docs:
        docs[file] = [
            d
            for d in docs[file]
            if not (
                d.get("kind") == "NetworkPolicy"
                and not d["spec"].get("podSelector")
                and not d["spec"].get("ingress")
                and not d["spec"].get("egress")
            )
        ]


def netpol(docs: Docs, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace(docs)}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": spec}


def set_sc(field: str, value: Any) -> Callable[[Docs], None]:
    return lambda docs: container(docs)["securityContext"].__setitem__(field, value)


def drop_pdbs(docs: Docs) -> None:
    for file in docs:
        docs[file] = [d for d in docs[file] if d.get("kind") != "PodDisruptionBudget"]
    workload(docs)["spec"]["replicas"] = 3
    for file in docs:  # a fixed replica count, not an autoscaler, keeps the hpa rule out of the picture
        docs[file] = [
            d for d in docs[file] if d.get("kind") not in ("HorizontalPodAutoscaler", "ScaledObject")
        ]


def image_tag(tag: str) -> Callable[[Docs], None]:
    return lambda docs: container(docs).__setitem__("image", container(docs)["image"].split("@")[0] + tag)


WORKLOAD_PEER = {"podSelector": {"matchLabels": {"app": "attacker"}}}

# name -> (mutation, rule the check must name)
MUTATIONS: dict[str, tuple[Callable[[Docs], None], str]] = {
    "latest-tag": (image_tag(":latest"), "require-image-digest"),
    "tag-without-digest": (image_tag(":1.2.3"), "require-image-digest"),
    "missing-limits": (lambda d: container(d)["resources"].pop("limits"), "require-resources"),
    "missing-ephemeral-storage": (
        lambda d: container(d)["resources"]["requests"].pop("ephemeral-storage"),
        "require-resources",
    ),
    "missing-cpu-request": (lambda d: container(d)["resources"]["requests"].pop("cpu"), "require-resources"),
    "privileged": (set_sc("privileged", True), "restricted-pod-security"),
    "privilege-escalation": (set_sc("allowPrivilegeEscalation", True), "restricted-pod-security"),
    "root-user": (set_sc("runAsUser", 0), "restricted-pod-security"),
    "added-capability": (
        set_sc("capabilities", {"drop": ["ALL"], "add": ["NET_ADMIN"]}),
        "restricted-pod-security",
    ),
    "capabilities-not-dropped": (set_sc("capabilities", {}), "restricted-pod-security"),
    "writable-root-filesystem": (set_sc("readOnlyRootFilesystem", False), "restricted-pod-security"),
    "seccomp-unconfined": (set_sc("seccompProfile", {"type": "Unconfined"}), "restricted-pod-security"),
    "host-path": (
        lambda d: pod(d).setdefault("volumes", []).append({"name": "h", "hostPath": {"path": "/"}}),
        "restricted-pod-security",
    ),
    "host-network": (lambda d: pod(d).__setitem__("hostNetwork", True), "restricted-pod-security"),
    "host-pid": (lambda d: pod(d).__setitem__("hostPID", True), "restricted-pod-security"),
    "host-port": (
        lambda d: container(d)["ports"][0].__setitem__("hostPort", 8080),
        "restricted-pod-security",
    ),
    "token-automount": (
        lambda d: pod(d).__setitem__("automountServiceAccountToken", True),
        "disable-token-automount",
    ),
    "missing-readiness-probe": (lambda d: container(d).pop("readinessProbe"), "require-probes"),
    "missing-liveness-probe": (lambda d: container(d).pop("livenessProbe"), "require-probes"),
    "default-deny-removed": (drop_default_deny, "require-default-deny"),
    "allow-all-ingress": (
        lambda d: add(d, netpol(d, "allow-all", {"podSelector": {}, "ingress": [{}]})),
        "no-allow-all",
    ),
    "undeclared-egress": (
        lambda d: add(
            d,
            netpol(
                d,
                "allow-exfil",
                {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{"to": [WORKLOAD_PEER], "ports": [{"port": 443, "protocol": "TCP"}]}],
                },
            ),
        ),
        "declared-edges-only",
    ),
    "plaintext-secret": (
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
    "ingress-without-tls": (lambda d: first(d, "Ingress")["spec"].pop("tls"), "ingress-tls"),
    "hpa-with-fixed-replicas": (
        lambda d: workload(d)["spec"].__setitem__("replicas", 2),
        "hpa-targets-workload",
    ),
    "hpa-missing-target": (
        lambda d: first(d, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"].__setitem__("name", "gone"),
        "hpa-targets-workload",
    ),
    "service-selector-typo": (
        lambda d: first(d, "Service")["spec"].__setitem__("selector", {"app": "typo"}),
        "service-selects-workload",
    ),
    "missing-pdb-in-prod": (drop_pdbs, "prod-pdb"),
    "kustomization-in-dist": (
        lambda d: d.__setitem__(
            "kustomization.yaml",
            [{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": []}],
        ),
        "argocd-readable-files",
    ),
}


def kinds(docs: Docs) -> set[str]:
    return {d.get("kind", "") for ds in docs.values() for d in ds}


def hpa_target(docs: Docs) -> dict[str, Any]:
    name = first(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"]
    return next(
        d
        for ds in docs.values()
        for d in ds
        if d.get("kind") == "Deployment" and d["metadata"]["name"] == name
    )


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


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory, base_dist: Any, tools: Any) -> dict[str, set[str]]:
    source, declared = base_dist
    # the richest environment: one with an Ingress and an HPA, so every mutation has something to break
    envs = dist.environments(source)
    env = next(
        (e for e in envs if {"Ingress", "HorizontalPodAutoscaler"} <= kinds(load_env(source / e))), envs[0]
    )
    base = load_env(source / env)
    flows = declared[env]
    out = tmp_path_factory.mktemp("mutated") / "dist"
    out.mkdir()
    all_flows = {}
    for name, (mutate, _) in MUTATIONS.items():
        docs = copy.deepcopy(base)
        mutate(docs)
        # every mutation folder is checked as production so the prod-only rules apply
        folder = "prod" if name == "missing-pdb-in-prod" else f"m-{name}"
        write_env(out / folder, docs)
        all_flows[folder] = flows
    if (source / "argocd").is_dir():
        shutil.copytree(source / "argocd", out / "argocd")
        app = next(p for p in sorted((out / "argocd").iterdir()) if "Application" in p.read_text())
        app.write_text(app.read_text().replace("path: dist/", "path: dist/renamed-"))
    waivers = out.parent / "exceptions.yaml"
    waivers.write_text("waivers: []\n")
    outcome = runner.run(
        repo_root=Path("."),
        dist_dir=out,
        tools=tools,
        waiver_file=waivers,
        only_env=None,
        declared_flows=all_flows,
    )
    caught: dict[str, set[str]] = {}
    for f in outcome.findings:
        caught.setdefault(f.environment, set()).add(f.rule)
    return caught


def folder_of(name: str) -> str:
    return "prod" if name == "missing-pdb-in-prod" else f"m-{name}"


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_is_rejected_naming_the_rule(batch: dict[str, set[str]], name: str) -> None:
    rule = MUTATIONS[name][1]
    assert rule in batch.get(folder_of(name), set()), (
        f"{name}: expected {rule}, got {batch.get(folder_of(name))}"
    )


def test_renamed_argocd_path_is_rejected(batch: dict[str, set[str]]) -> None:
    assert "argocd-paths" in batch.get("argocd", set())


def test_print_count_caught(batch: dict[str, set[str]], capsys: pytest.CaptureFixture[str]) -> None:
    caught = [n for n, (_, rule) in MUTATIONS.items() if rule in batch.get(folder_of(n), set())]
    caught += ["argocd-renamed-path"] if "argocd-paths" in batch.get("argocd", set()) else []
    with capsys.disabled():  # shown in every `make test` run, not only on failure
        print(f"\nmutation suite: {len(caught)} of {len(MUTATIONS) + 1} kinds of break caught")
    assert len(caught) == len(MUTATIONS) + 1
