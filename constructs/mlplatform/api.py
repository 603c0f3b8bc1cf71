"""A small read-only API over the spec for tools outside the generator (today: the network-policy tests).

- `list_environments(repo_root)`: the environment names (every overlays/*.yaml but platform.yaml).
- `declared_network_flows(env, repo_root=...)`: every network flow the spec allows in that environment,
  each `{"namespace", "policy_pod_selector", "direction", "peer", "ports"}`; `peer` is the NetworkPolicyPeer
  exactly as rendered in dist/, `policy_pod_selector` the matchLabels of the policy's podSelector
  ({} = all pods).
  Computed by the same code that renders the NetworkPolicies (`mlplatform.network`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mlplatform import network
from mlplatform.schema import SpecError, load_environment
from mlplatform.schema import list_environments as _list_environments

__all__ = ["SpecError", "declared_network_flows", "list_environments"]


def list_environments(repo_root: Path) -> list[str]:
    return _list_environments(Path(repo_root))


def declared_network_flows(env: str, *, repo_root: Path) -> list[dict[str, Any]]:
    environment = load_environment(env, repo_root=Path(repo_root))
    return copy.deepcopy(network.flows(environment))
