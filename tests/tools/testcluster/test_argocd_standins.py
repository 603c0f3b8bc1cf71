"""The operator stand-ins of the Argo CD test, on the real test apiserver: each writes what its operator
would, so Argo CD's own health checks (which read only status) can pass, and nothing more.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import yaml

from testcluster.kubeapi import ApiError, Kube
from testcluster.standins import StandIns

from .conftest import DIST

NS = "standin-test"


def _run(step: Callable[[], None]) -> None:
    """One stand-in pass; after CRD installs the apiserver answers "storage is (re)initializing" a while."""
    deadline = time.monotonic() + 60
    while True:
        try:
            step()
            return
        except ApiError as exc:
            if "initializing" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _namespace(kube: Kube) -> None:
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})


def _from_dist(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DIST / "dev" / name).read_text())
    doc["metadata"]["namespace"] = NS
    return doc


def test_external_secret_gets_its_secret_and_ready(kube: Kube) -> None:
    _namespace(kube)
    es = _from_dist("externalsecret-redis-auth.yaml")
    assert kube.apply(es).ok
    standins = StandIns(kube, {NS})
    _run(standins.external_secrets)
    live = kube.get(es["apiVersion"], "ExternalSecret", NS, es["metadata"]["name"])
    assert live is not None
    assert [c["status"] for c in live["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
    target = es["spec"]["target"]["name"]
    secret = kube.get("v1", "Secret", NS, target)
    assert secret is not None
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    password = data["password"]
    assert len(password) == 32
    # The template of dist/ is rendered with the same value, as ESO does.
    assert f"requirepass {password}" in data["auth.conf"]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == live["metadata"]["uid"]
    _run(
        standins.external_secrets
    )  # already Ready: left alone, the password does not change under a running Redis
    again = kube.get("v1", "Secret", NS, target)
    assert again is not None and again["data"] == secret["data"]


def test_claim_gets_a_volume_and_binds(kube: Kube) -> None:
    _namespace(kube)
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": NS},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "standard",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    assert kube.apply(claim).ok
    _run(StandIns(kube, {NS}).volumes)
    deadline = time.monotonic() + 30
    while True:
        live = kube.get("v1", "PersistentVolumeClaim", NS, "data")
        assert live is not None
        if live.get("status", {}).get("phase") == "Bound":
            break
        assert time.monotonic() < deadline, f"claim not bound: {live.get('status')}"
        time.sleep(0.5)
    pv = kube.get("v1", "PersistentVolume", None, live["spec"]["volumeName"])
    assert pv is not None and pv["spec"]["storageClassName"] == "standard"


def test_out_of_scope_namespaces_are_untouched(kube: Kube) -> None:
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "standin-other"}})
    es = _from_dist("externalsecret-inference-api-keys.yaml")
    es["metadata"]["namespace"] = "standin-other"
    assert kube.apply(es).ok
    _run(StandIns(kube, {NS}).external_secrets)
    live = kube.get(es["apiVersion"], "ExternalSecret", "standin-other", es["metadata"]["name"])
    assert live is not None and not live.get("status", {}).get("conditions")


def _bound_within(kube: Kube, name: str, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        live = kube.get("v1", "PersistentVolumeClaim", NS, name)
        assert live is not None
        if live.get("status", {}).get("phase") == "Bound":
            return live
        assert time.monotonic() < deadline, f"{name} not bound in {seconds:.0f} s: {live.get('status')}"
        time.sleep(0.2)


def test_a_statefulsets_claim_made_before_its_volume_binds_at_once(kube: Kube) -> None:
    """The usual order on a node: the StatefulSet controller makes the claim before the stand-in looks. A
    volume pre-bound by name only would wait for the PV controller's periodic resync (15 s); the stand-in's
    volume names the claim's UID, so the PV controller syncs the claim as soon as it sees the volume."""
    _namespace(kube)
    sts = _from_dist("statefulset-redis.yaml")
    sts["metadata"]["name"] = "early"
    assert kube.apply(sts).ok
    claim = "data-early-0"
    deadline = time.monotonic() + 30
    while kube.get("v1", "PersistentVolumeClaim", NS, claim) is None:  # made by the StatefulSet controller
        assert time.monotonic() < deadline, "the StatefulSet controller made no claim"
        time.sleep(0.1)
    time.sleep(1.0)  # the PV controller has synced the claim and found no volume
    _run(StandIns(kube, {NS}).volumes)
    live = _bound_within(kube, claim, 5)
    pv = kube.get("v1", "PersistentVolume", None, live["spec"]["volumeName"])
    assert pv is not None and pv["spec"]["claimRef"]["uid"] == live["metadata"]["uid"]


def test_a_volume_made_before_its_claim_gets_the_claims_uid(kube: Kube) -> None:
    """A volume pre-bound by name (made for a StatefulSet's claim before the claim exists) is given the
    claim's UID once the claim exists and is still unbound."""
    _namespace(kube)
    spec = {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "premium-ssd",
        "resources": {"requests": {"storage": "1Gi"}},
    }
    standins = StandIns(kube, {NS})
    # the claim, then a volume by name only, as the old stand-in made it after the claim's first sync
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "late", "namespace": NS}}
    assert kube.apply({**pvc, "spec": spec}).ok
    time.sleep(1.0)
    _run(lambda: standins._provide(NS, "late", spec))
    _run(standins.volumes)
    live = _bound_within(kube, "late", 5)
    pv = kube.get("v1", "PersistentVolume", None, live["spec"]["volumeName"])
    assert pv is not None and pv["spec"]["claimRef"]["uid"] == live["metadata"]["uid"]
