"""Simulated nodes for a ControlPlane: kube-scheduler places pods, kwok plays the kubelets.

kube-scheduler is built from the same module as the apiserver (tools/setup/k8s-tools.sh); kwok (tools/kwok/,
tools/setup/argocd-tools.sh) keeps the fake nodes Ready and moves each scheduled pod to Running and Ready with
the Stage rules that ship in kwok's own module at the pinned version. Nothing runs in the pods: that is what
lets Argo CD judge Deployment and StatefulSet health on a machine without a container runtime.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from testcluster.controlplane import BIN_DIR, ControlPlane, binary
from testcluster.errors import ClusterTestError
from testcluster.kubeapi import Kube
from testcluster.processes import free_port
from testcluster.versions import module_dir, pinned

ARGOCD_SETUP_HINT = "run `make argocd-test` once (or tools/setup/argocd-tools.sh) to build it"
#: kwok's "fast" Stage rules: nodes initialised and kept alive, pods Ready at once, deletions finished.
KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat/node-heartbeat.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
ZONES = ("zone-a", "zone-b", "zone-c")


def tool(name: str) -> Path:
    """A binary of the Argo CD test (argocd, kwok), or one line saying how to build it."""
    path = BIN_DIR / name
    if not (path.exists() and os.access(path, os.X_OK)):
        raise ClusterTestError(f"{name} not found at {path}; {ARGOCD_SETUP_HINT}")
    return path


def _node(name: str, zone: str) -> dict[str, object]:
    capacity = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "200Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": zone,
                "type": "kwok",
            },
        },
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def start_scheduler(plane: ControlPlane) -> None:
    """kube-scheduler against the plane (on a free loopback port)."""
    plane.start_process(
        "kube-scheduler",
        [
            str(binary("kube-scheduler")),
            f"--kubeconfig={plane.kubeconfig}",
            f"--authentication-kubeconfig={plane.kubeconfig}",
            f"--authorization-kubeconfig={plane.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--v=0",
        ],
    )


def start_nodes(plane: ControlPlane, kube: Kube, count: int = 3, timeout_s: float = 60.0) -> list[str]:
    """Start kube-scheduler and kwok against the plane and register `count` fake nodes, one per zone."""
    kwok = tool("kwok")
    stages = module_dir("sigs.k8s.io/kwok", pinned("KWOK_VERSION"))
    configs = []
    for rel in KWOK_STAGES:
        path = stages / rel
        if not path.is_file():
            raise ClusterTestError(
                f"sigs.k8s.io/kwok@{pinned('KWOK_VERSION')} has no {rel}; check KWOK_VERSION"
            )
        configs += ["--config", str(path)]
    start_scheduler(plane)
    plane.start_process(
        "kwok",
        [
            str(kwok),
            *configs,
            f"--kubeconfig={plane.kubeconfig}",
            "--manage-all-nodes=true",
            f"--server-address=127.0.0.1:{free_port()}",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.0.0.1",
        ],
    )
    names = [f"kwok-node-{i}" for i in range(count)]
    for i, name in enumerate(names):
        result = kube.apply(_node(name, ZONES[i % len(ZONES)]))
        if not result.ok:
            raise ClusterTestError(f"registering the fake node {name}: {result.message}")
    deadline = time.monotonic() + timeout_s
    while True:
        plane.check_alive()
        ready = [
            n["metadata"]["name"]
            for n in kube.list("v1", "Node", None)
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        if set(names) <= set(ready):
            return names
        if time.monotonic() > deadline:
            raise ClusterTestError(
                f"kwok did not make the nodes Ready in {timeout_s:.0f} s; see {plane.workdir}/kwok.log"
            )
        time.sleep(0.5)
