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
