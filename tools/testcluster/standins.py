"""Stand-ins for the operators the test cluster does not run, each doing the one thing Argo CD's health reads.

Argo CD judges health from status that controllers write. Here there is no External Secrets Operator, no KEDA,
no ingress or Gateway controller and no storage provisioner, so without help those objects stay Progressing
and no sync wave after them would ever start. Each stand-in writes what the real controller would, and nothing
more:

- ExternalSecret (External Secrets Operator): the target Secret, with random values for each `secretKey` and
  the `{{ .key }}` fields of `target.template.data` filled in, owned by the ExternalSecret; then `Ready=True`.
- ScaledObject (KEDA): `Ready=True`, `Active=False` (KEDA's conditions for a valid, idle ScaledObject).
- Ingress (an ingress controller): `status.loadBalancer.ingress` set to a loopback address.
- HTTPRoute and GRPCRoute (a Gateway controller): `Accepted=True` and `ResolvedRefs=True` for each parentRef.
- PersistentVolumeClaim (a provisioner): a PersistentVolume of the claim's class, size and access modes,
  pre-bound to it (for a StatefulSet's claims, as soon as the StatefulSet exists); kube-controller-manager's
  PV controller does the binding itself.

Argo CD's own health checks (the Lua scripts built into the pinned binary) then read these as they would on a
real cluster. The stand-ins never touch a Deployment, StatefulSet or Pod: their health comes from the real
controllers, kube-scheduler and kwok.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from testcluster.kubeapi import ApiError, Kube

_FIELD = re.compile(r"\{\{\s*\.([A-Za-z0-9_]+)\s*\}\}")
STANDIN = "mlplatform-test-standin"


def _render(template: str, values: dict[str, str]) -> str:
    """ESO's `{{ .key }}` template fields, filled in (the only template feature dist/ uses)."""
    return _FIELD.sub(lambda m: values.get(m.group(1), ""), template)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ready(cond_type: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {
        "type": cond_type,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": _now(),
    }


def _has(obj: dict[str, Any], cond_type: str) -> bool:
    return any(c.get("type") == cond_type for c in obj.get("status", {}).get("conditions") or [])


@dataclass
class StandIns:
    kube: Kube
    namespaces: set[str]
    acted: list[str] = field(default_factory=list)  # what was done, for the report
    # Where the volumes' folders are made (a real node mounts them); None: volumes are never mounted (kwok).
    volume_root: Path | None = None
    # (apiVersion, kind) whose CRD was not served yet -> when to ask again
    _unserved: dict[tuple[str, str], float] = field(default_factory=dict)

    def _in_scope(self, obj: dict[str, Any]) -> bool:
        return str(obj["metadata"].get("namespace")) in self.namespaces

    def _list(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        """The objects of one kind in the namespaces in scope (namespaces not created yet, and kinds whose CRD
        an add-on has not installed yet, are skipped)."""
        found: list[dict[str, Any]] = []
        now = time.monotonic()
        if self._unserved.get((api_version, kind), 0.0) > now:
            return found
        for namespace in sorted(self.namespaces):
            try:
                found += self.kube.list(api_version, kind, namespace)
            except ApiError as exc:
                if "serves no" in str(exc):  # asked again in 5 s (each miss re-reads discovery)
                    self._unserved[(api_version, kind)] = now + 5.0
                    return found
                if "NotFound" not in str(exc) and "not found" not in str(exc):
                    raise
        return found

    def _set_status(
        self, api_version: str, kind: str, meta: dict[str, Any], status: dict[str, Any], did: str
    ) -> None:
        self.kube.patch(
            api_version, kind, meta["namespace"], meta["name"], {"status": status}, subresource="status"
        )
        self.acted.append(did)

    def external_secrets(self) -> None:
        for es in self._list("external-secrets.io/v1", "ExternalSecret"):
            if not self._in_scope(es) or _has(es, "Ready"):
                continue
            meta, spec = es["metadata"], es["spec"]
            values = {d["secretKey"]: secrets.token_hex(16) for d in spec.get("data") or []}
            target = spec.get("target") or {}
            template = (target.get("template") or {}).get("data")
            data = {k: _render(v, values) for k, v in template.items()} if template else values
            name = target.get("name") or meta["name"]
            owner = {
                "apiVersion": es["apiVersion"],
                "kind": "ExternalSecret",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": name,
                    "namespace": meta["namespace"],
                    "labels": {"reconcile.external-secrets.io/managed": "true"},
                    "ownerReferences": [owner],
                },
                "type": "Opaque",
                "stringData": data,
            }
            result = self.kube.apply(secret)
            if not result.ok:
                raise ApiError(
                    f"stand-in for External Secrets: Secret {meta['namespace']}/{name}: {result.message}"
                )
            status = {
                "conditions": [_ready("Ready", "True", "SecretSynced", "secret synced (test stand-in)")],
                "refreshTime": _now(),
                "binding": {"name": name},
            }
            self._set_status(
                es["apiVersion"],
                "ExternalSecret",
                meta,
                status,
                f"ExternalSecret {meta['namespace']}/{meta['name']} -> Secret {name}",
            )

    def scaled_objects(self) -> None:
        for so in self._list("keda.sh/v1alpha1", "ScaledObject"):
            if not self._in_scope(so) or _has(so, "Ready"):
                continue
            meta = so["metadata"]
            status = {
                "conditions": [
                    _ready(
                        "Ready",
                        "True",
                        "ScaledObjectReady",
                        "ScaledObject is defined correctly (test stand-in)",
                    ),
                    _ready("Active", "False", "ScalerNotActive", "no scaler is active (test stand-in)"),
                ]
            }
            self._set_status(
                so["apiVersion"],
                "ScaledObject",
                meta,
                status,
                f"ScaledObject {meta['namespace']}/{meta['name']} Ready",
            )

    def ingresses(self) -> None:
        for ing in self._list("networking.k8s.io/v1", "Ingress"):
            if not self._in_scope(ing) or (ing.get("status", {}).get("loadBalancer") or {}).get("ingress"):
                continue
            meta = ing["metadata"]
            status = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
            self._set_status(
                "networking.k8s.io/v1",
                "Ingress",
                meta,
                status,
                f"Ingress {meta['namespace']}/{meta['name']} has an address",
            )

    def routes(self, kind: str) -> None:
        for route in self._list("gateway.networking.k8s.io/v1", kind):
            meta = route["metadata"]
            parents = route.get("status", {}).get("parents") or []
            generation = meta.get("generation")
            if not self._in_scope(route) or (
                parents
                and all(c.get("observedGeneration") == generation for p in parents for c in p["conditions"])
            ):
                continue
            conditions = [
                {**_ready(t, "True", t, f"{t} (test stand-in)"), "observedGeneration": generation}
                for t in ("Accepted", "ResolvedRefs")
            ]
            status = {
                "parents": [
                    {"parentRef": ref, "controllerName": f"mlplatform.io/{STANDIN}", "conditions": conditions}
                    for ref in route["spec"].get("parentRefs") or []
                ]
            }
            self._set_status(
                route["apiVersion"], kind, meta, status, f"{kind} {meta['namespace']}/{meta['name']} accepted"
            )

    def _host_path(self, name: str) -> dict[str, str]:
        if self.volume_root is None:
            return {"path": f"/var/lib/mlplatform-test/{name}"}  # never mounted: kwok runs no pods
        folder = self.volume_root / name
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(
            0o777
        )  # hostPath volumes get no fsGroup ownership: any pod UID may write, as on a fresh disk
        return {"path": str(folder), "type": "Directory"}

    def _provide(self, namespace: str, claim: str, spec: dict[str, Any], uid: str | None = None) -> None:
        """A PersistentVolume pre-bound to the claim namespace/claim, as a provisioner would make. With the
        claim's UID (the claim exists) the PV controller syncs the claim as soon as it sees the volume; a
        volume made before its claim (no UID yet) is given the UID once the claim exists, for that reason."""
        name = f"pv-{namespace}-{claim}"[:63]
        existing = self.kube.get("v1", "PersistentVolume", None, name)
        if existing is not None:
            if uid and not (existing["spec"].get("claimRef") or {}).get("uid"):
                self.kube.patch("v1", "PersistentVolume", None, name, {"spec": {"claimRef": {"uid": uid}}})
                self.acted.append(f"PersistentVolume {name} given the UID of {namespace}/{claim}")
            return
        claim_ref = {"namespace": namespace, "name": claim, **({"uid": uid} if uid else {})}
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": {"mlplatform.io/test": STANDIN}},
            "spec": {
                "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "storageClassName": spec.get("storageClassName") or "",
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": self._host_path(name),
                "claimRef": claim_ref,
            },
        }
        result = self.kube.apply(pv)
        if not result.ok:
            raise ApiError(f"stand-in provisioner: PersistentVolume {name}: {result.message}")
        self.acted.append(f"PersistentVolume {name} for {namespace}/{claim}")

    def volumes(self) -> None:
        """A volume for every claim not yet bound, and for every claim a StatefulSet will make (before the
        StatefulSet controller makes it, so the claim is bound when its pod reaches the scheduler).

        A volume pre-bound by name only is bound by the PV controller when it syncs the claim: at once when
        the claim comes after the volume, but only at its periodic resync (15 s) when the claim came first,
        the usual order (the StatefulSet controller makes claims within milliseconds, this loop looks every
        half second). So a volume always names the UID of a claim that exists (the handshake of a real
        provisioner), which makes the PV controller sync the claim as soon as it sees the volume."""
        wanted: dict[tuple[str, str], dict[str, Any]] = {}
        for sts in self._list("apps/v1", "StatefulSet"):
            meta = sts["metadata"]
            for template in sts["spec"].get("volumeClaimTemplates") or []:
                for i in range(int(sts["spec"].get("replicas", 1))):
                    claim = f"{template['metadata']['name']}-{meta['name']}-{i}"
                    wanted[(meta["namespace"], claim)] = template["spec"]
        claims = {
            (c["metadata"]["namespace"], c["metadata"]["name"]): c
            for c in self._list("v1", "PersistentVolumeClaim")
        }
        for namespace, name in sorted(set(wanted) | set(claims)):
            pvc = claims.get((namespace, name))
            if pvc is None:
                self._provide(namespace, name, wanted[(namespace, name)])
            elif not pvc["spec"].get("volumeName") and pvc.get("status", {}).get("phase") != "Bound":
                self._provide(namespace, name, pvc["spec"], pvc["metadata"]["uid"])

    def once(self) -> None:
        """Every stand-in once; one that fails does not keep the others from running (a stand-in failing on
        every pass before the provisioner would leave every claim unbound). Raises the first error."""
        errors: list[Exception] = []
        for step in (
            self.external_secrets,
            self.scaled_objects,
            self.ingresses,
            lambda: self.routes("HTTPRoute"),
            lambda: self.routes("GRPCRoute"),
            self.volumes,
        ):
            try:
                step()
            except Exception as exc:  # re-raised below, after the other stand-ins ran
                errors.append(exc)
        if errors:
            raise errors[0]


class StandInLoop:
    """Runs the stand-ins every half second in a thread until stopped.

    An apiserver answers some requests with errors while it installs CRDs ("storage is (re)initializing"), so
    an error counts only once it persists: `error` is set after `patience_s` seconds of failing in a row.
    """

    def __init__(self, standins: StandIns, patience_s: float = 20.0) -> None:
        self.standins = standins
        self.patience_s = patience_s
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stand-ins", daemon=True)

    def _run(self) -> None:
        failing_since: float | None = None
        while not self._stop.is_set():
            try:
                self.standins.once()
                failing_since = None
            except Exception as exc:  # reported by the scenario's alive() once it persists
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > self.patience_s:
                    self.error = self.error or exc
            self._stop.wait(0.5)

    def __enter__(self) -> StandInLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
