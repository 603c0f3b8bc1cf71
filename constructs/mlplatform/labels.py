"""Labels and selectors: stable, readable, never derived from construct paths."""

from __future__ import annotations

NAME = "app.kubernetes.io/name"
PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT = "app.kubernetes.io/component"
TRACK = "track"  # stable | canary: which version of a service a pod runs
MANAGER = "cdk8s"
#: Set on every Namespace the platform manages. The cluster policies (dist/cluster-policies/) select
#: namespaces by this label only, so they never touch other teams' namespaces.
MANAGED_NAMESPACE = "mlplatform.io/managed"
MANAGED_NAMESPACE_VALUE = "true"


def common(*, platform: str, name: str, component: str | None = None) -> dict[str, str]:
    """Labels every object of a component carries."""
    labels = {NAME: name, PART_OF: platform, MANAGED_BY: MANAGER}
    if component:
        labels[COMPONENT] = component
    return labels


def select(name: str) -> dict[str, str]:
    """The selector of every pod of a component (used by NetworkPolicies, PDBs, spread constraints)."""
    return {NAME: name}


def select_track(name: str, track: str) -> dict[str, str]:
    """The selector of one version (stable or canary) of a service."""
    return {NAME: name, TRACK: track}
