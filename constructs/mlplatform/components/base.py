"""What every construct shares: the chart, object metadata, sync waves, typed values and security contexts.

Cost model (measured by bench/synth_bench.py): every call from Python into cdk8s crosses to its Node
process through jsii (a round trip each). A typed object is one call when all its props are given to its
constructor: props are structs, serialized with the call. `Quantity` and `IntOrString` values are jsii
objects made by a call each, so they are made once per distinct value and reused (`quantity`, `port`).
`mlplatform.synth.render` sends structs with only their set fields (`mlplatform.jsii_structs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cdk8s
import cdk8s_plus_33 as kplus
from cdk8s_plus_33 import k8s

from constructs import Construct

WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"
#: Sync waves: namespace, quotas and network policies first, then secrets and Redis, then the services.
WAVE_NAMESPACE = "0"
WAVE_DATA = "1"
WAVE_SERVICES = "2"
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
#: Data Argo CD must never delete: not when its object leaves git (Prune=false), not when its Application is
#: deleted (Delete=false); left behind, it does not hold the Application OutOfSync (IgnoreExtraneous: Argo
#: CD reads the option from the live object, so a claim whose service was removed still carries it).
KEEP = {SYNC_OPTIONS: "Prune=false,Delete=false", "argocd.argoproj.io/compare-options": "IgnoreExtraneous"}
#: The namespace outlives its Application (Delete=false): the claims that KEEP protects live in it.
KEEP_NAMESPACE = {SYNC_OPTIONS: "Delete=false"}


class PlatformChart(cdk8s.Chart):
    """A chart whose objects are named by their `metadata.name` only (no hashes) and set no namespace.

    Each object carries its own namespace: a chart namespace would also land on cluster-scoped kinds.
    """

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id, disable_resource_name_hashes=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class Meta:
    """Metadata shared by a component's objects: namespace (None: cluster-scoped), labels, sync wave."""

    namespace: str | None
    labels: dict[str, str]
    wave: str

    def at(self, wave: str) -> Meta:
        return Meta(namespace=self.namespace, labels=self.labels, wave=wave)

    def labelled(self, extra: dict[str, str]) -> Meta:
        return Meta(namespace=self.namespace, labels={**self.labels, **extra}, wave=self.wave)

    def _annotations(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {WAVE_ANNOTATION: self.wave, **(extra or {})}

    def l1(self, name: str, *, annotations: dict[str, str] | None = None) -> k8s.ObjectMeta:
        """For the k8s L1 classes (`cdk8s_plus_33.k8s`)."""
        return k8s.ObjectMeta(
            name=name,
            namespace=self.namespace,
            labels=self.labels,
            annotations=self._annotations(annotations),
        )

    def api(
        self, name: str, *, annotations: dict[str, str] | None = None, finalizers: list[str] | None = None
    ) -> cdk8s.ApiObjectMetadata:
        """For cdk8s-plus L2 constructs and the classes made by `cdk8s import`."""
        return cdk8s.ApiObjectMetadata(
            name=name,
            namespace=self.namespace,
            labels=self.labels,
            annotations=self._annotations(annotations),
            finalizers=finalizers,
        )


@cache
def quantity(value: str) -> k8s.Quantity:
    """A resource quantity such as `500m` or `1Gi` (one jsii object per distinct value)."""
    return k8s.Quantity.from_string(value)


@cache
def port(value: int | str) -> k8s.IntOrString:
    """A port by number or by name (one jsii object per distinct value)."""
    return (
        k8s.IntOrString.from_number(value) if isinstance(value, int) else k8s.IntOrString.from_string(value)
    )


def quantities(values: dict[str, str]) -> dict[str, k8s.Quantity]:
    return {key: quantity(value) for key, value in values.items()}


def resources(requirements: dict[str, dict[str, str]]) -> k8s.ResourceRequirements:
    """`{"limits": {...}, "requests": {...}}` as typed ResourceRequirements."""
    return k8s.ResourceRequirements(
        limits=quantities(requirements["limits"]), requests=quantities(requirements["requests"])
    )


SECCOMP = k8s.SeccompProfile(type="RuntimeDefault")


def pod_security_context(uid: int, *, knative: bool = False) -> k8s.PodSecurityContext:
    """Pod-level restricted settings: fixed non-root UID/GID, fsGroup for volumes, seccomp RuntimeDefault.
    `knative`: without fsGroupChangePolicy, which Knative's pod security context mask refuses."""
    return k8s.PodSecurityContext(
        fs_group=uid,
        fs_group_change_policy=None if knative else "OnRootMismatch",
        run_as_group=uid,
        run_as_non_root=True,
        run_as_user=uid,
        seccomp_profile=SECCOMP,
    )


def container_security_context(uid: int, *, knative: bool = False) -> k8s.SecurityContext:
    """Container-level restricted settings (Pod Security Standard `restricted`, plus a read-only root).
    `knative`: `privileged` left unset (false all the same), which Knative's container mask refuses to see."""
    return k8s.SecurityContext(
        allow_privilege_escalation=False,
        capabilities=k8s.Capabilities(drop=["ALL"]),
        privileged=None if knative else False,
        read_only_root_filesystem=True,
        run_as_group=uid,
        run_as_non_root=True,
        run_as_user=uid,
        seccomp_profile=SECCOMP,
    )


def secret_volume(name: str, *, secret: str, key: str, path: str | None = None) -> k8s.Volume:
    """A volume with one key of a Secret, readable by the owner and group only."""
    items = [k8s.KeyToPath(key=key, path=path or key)]
    return k8s.Volume(
        name=name, secret=k8s.SecretVolumeSource(secret_name=secret, default_mode=0o440, items=items)
    )


def tcp_port(name: str, number: int) -> k8s.ContainerPort:
    return k8s.ContainerPort(name=name, container_port=number, protocol="TCP")


def service_account(scope: Construct, *, meta: Meta, name: str) -> kplus.ServiceAccount:
    """A ServiceAccount whose token is never mounted automatically (cdk8s-plus's default, kept)."""
    return kplus.ServiceAccount(scope, "service-account", metadata=meta.api(name), automount_token=False)
