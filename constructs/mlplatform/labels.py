"""Label keys and values, for code outside the generator (the policy gate); defined in `mlplatform.names`."""

from mlplatform.names import (
    COMPONENT,
    MANAGED_BY,
    MANAGED_NAMESPACE,
    MANAGED_NAMESPACE_VALUE,
    MANAGER,
    NAME,
    PART_OF,
    TRACK,
    common,
    select,
)

__all__ = [
    "COMPONENT",
    "MANAGED_BY",
    "MANAGED_NAMESPACE",
    "MANAGED_NAMESPACE_VALUE",
    "MANAGER",
    "NAME",
    "PART_OF",
    "TRACK",
    "common",
    "select",
]
