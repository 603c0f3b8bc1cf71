"""Every workload at its maximum (autoscalers' maxima, the canary, a rollout's surge); every pod admitted.

The controllers create the pods, so the namespace's Pod Security level, LimitRange and ResourceQuota judge
them for real. Expectations come from the manifests themselves (replicas, HPA/ScaledObject maxima, the
Deployment strategy), never from the generator.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from testcluster.apply import Manifest
from testcluster.kubeapi import Kube

KEDA_DEFAULT_MAX = 100  # KEDA's default maxReplicaCount
ROLLOUT_ANNOTATION = "mlplatform.io/cluster-test-rollout"
SETTLE_TIMEOUT_S = 45.0
STUCK_AFTER_S = 4.0


@dataclass
class Workload:
    manifest: Manifest
    max_replicas: int
    surge: int
    scaled_by: str  # "replicas", "HorizontalPodAutoscaler x", "ScaledObject x"

    @property
    def kind(self) -> str:
        return str(self.manifest.obj["kind"])

    @property
    def namespace(self) -> str:
        return str(self.manifest.obj["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.manifest.obj["metadata"]["name"])

    @property
    def expected_pods(self) -> int:
        return self.max_replicas + self.surge

    @property
    def selector(self) -> str:
        labels = self.manifest.obj["spec"]["selector"]["matchLabels"]
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def surge_of(deployment: dict[str, Any], replicas: int) -> int:
    strategy = deployment["spec"].get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0
    value = (strategy.get("rollingUpdate") or {}).get("maxSurge", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(replicas * int(value[:-1]) / 100)
    return int(value)


def plan(manifests: list[Manifest]) -> list[Workload]:
    maxima: dict[tuple[str, str], tuple[int, str]] = {}
    for m in manifests:
        kind, spec = m.obj.get("kind"), m.obj.get("spec") or {}
        if kind == "HorizontalPodAutoscaler":
            ref = spec["scaleTargetRef"]
            maxima[(ref["kind"], ref["name"])] = (
                int(spec["maxReplicas"]),
                f"HorizontalPodAutoscaler {m.obj['metadata']['name']}",
            )
        elif kind == "ScaledObject":
            ref = spec["scaleTargetRef"]
            top = int(spec.get("maxReplicaCount", KEDA_DEFAULT_MAX))
            maxima[(ref.get("kind", "Deployment"), ref["name"])] = (
                top,
                f"ScaledObject {m.obj['metadata']['name']}",
            )
    workloads = []
    for m in manifests:
        kind = m.obj.get("kind")
        if kind not in ("Deployment", "StatefulSet"):
            continue
        name = m.obj["metadata"]["name"]
        top, by = maxima.get((str(kind), name), (int(m.obj["spec"].get("replicas") or 1), "replicas"))
        surge = surge_of(m.obj, top) if kind == "Deployment" else 0
        workloads.append(Workload(manifest=m, max_replicas=top, surge=surge, scaled_by=by))
    return workloads


def _live_pods(kube: Kube, w: Workload) -> list[dict[str, Any]]:
    pods = kube.list("v1", "Pod", w.namespace, labelSelector=w.selector)
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _mark_ready(kube: Kube, pod: dict[str, Any]) -> None:
    """What a kubelet would report, so an OrderedReady StatefulSet creates its next pod."""
    if pod.get("status", {}).get("phase") == "Running":
        return
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    conditions = [
        {"type": t, "status": "True", "lastTransitionTime": now}
        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    kube.patch(
        "v1",
        "Pod",
        pod["metadata"]["namespace"],
        pod["metadata"]["name"],
        {"status": {"phase": "Running", "conditions": conditions, "startTime": now}},
        subresource="status",
    )


def failed_creates(kube: Kube, namespace: str) -> dict[str, str]:
    """The last FailedCreate message per owner (ReplicaSet or StatefulSet name)."""
    found: dict[str, tuple[str, str]] = {}
    for event in kube.list("v1", "Event", namespace, fieldSelector="reason=FailedCreate"):
        owner = event["involvedObject"]["name"]
        stamp = event.get("lastTimestamp") or event.get("eventTime") or ""
        if owner not in found or stamp >= found[owner][0]:
            found[owner] = (stamp, event.get("message", ""))
    return {owner: msg for owner, (_, msg) in found.items()}


def _owners(kube: Kube, w: Workload) -> set[str]:
    """The objects that create this workload's pods: itself (StatefulSet) or its ReplicaSets (Deployment)."""
    if w.kind != "Deployment":
        return {w.name}
    return {
        rs["metadata"]["name"]
        for rs in kube.list("apps/v1", "ReplicaSet", w.namespace)
        if any(
            ref.get("kind") == "Deployment" and ref.get("name") == w.name
            for ref in rs["metadata"].get("ownerReferences", [])
        )
    }


def _wait_observed(kube: Kube, w: Workload, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        obj = kube.get("apps/v1", w.kind, w.namespace, w.name) or {}
        observed = obj.get("status", {}).get("observedGeneration", 0)
        if observed >= obj.get("metadata", {}).get("generation", 1) and _owners(kube, w):
            return
        time.sleep(0.2)


def scale_to_max(kube: Kube, workloads: list[Workload]) -> list[str]:
    """Scale every workload to its maximum, start a rollout (the surge), report every pod not admitted."""
    namespaces = sorted({w.namespace for w in workloads})
    for w in workloads:
        scale = {"spec": {"replicas": w.max_replicas}}
        kube.patch("apps/v1", w.kind, w.namespace, w.name, scale, subresource="scale")
    for w in workloads:
        if w.surge:
            # A rollout needs a first revision to roll from: wait until the controller has made it.
            _wait_observed(kube, w)
            stamp = {"spec": {"template": {"metadata": {"annotations": {ROLLOUT_ANNOTATION: "1"}}}}}
            kube.patch("apps/v1", w.kind, w.namespace, w.name, stamp)
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    counts: dict[str, int] = {}
    last_change = time.monotonic()
    while True:
        done = True
        for w in workloads:
            pods = _live_pods(kube, w)
            if w.kind == "StatefulSet":
                for pod in pods:
                    _mark_ready(kube, pod)
            if counts.get(w.manifest.label) != len(pods):
                last_change = time.monotonic()
            counts[w.manifest.label] = len(pods)
            done &= len(pods) >= w.expected_pods
        now = time.monotonic()
        # Refused pods are retried with a growing back-off: once nothing has changed for a while and admission
        # has said no, waiting longer cannot help.
        stuck = now - last_change > STUCK_AFTER_S and any(failed_creates(kube, ns) for ns in namespaces)
        if done or stuck or now > deadline:
            break
        time.sleep(0.3)
    failures = []
    for w in workloads:
        have = counts[w.manifest.label]
        if have >= w.expected_pods:
            continue
        owners = _owners(kube, w)
        why = [msg for owner, msg in sorted(failed_creates(kube, w.namespace).items()) if owner in owners]
        failures.append(
            f"{w.manifest.label}: {have} of {w.expected_pods} pods admitted "
            f"(max {w.max_replicas} from {w.scaled_by}, rollout surge {w.surge}): "
            + ("; ".join(why) if why else f"no pod created in {SETTLE_TIMEOUT_S:.0f} s")
        )
    return failures
