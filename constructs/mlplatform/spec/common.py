"""Field types shared by the platform spec and the overlays."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

#: A DNS-1123 label: what Kubernetes accepts as a Service, Deployment or Namespace name.
DnsLabel = Annotated[str, StringConstraints(pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")]
#: A Kubernetes resource quantity such as `500m`, `2`, `512Mi`, `10Gi`.
Quantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")]
#: An OCI image digest.
Digest = Annotated[str, StringConstraints(pattern=r"^sha256:[a-f0-9]{64}$")]
#: An image repository without tag or digest, e.g. `ghcr.io/example/inference`.
ImageRepository = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+([._/:-][a-z0-9]+)*$")]
#: A host name (RFC 1123).
Hostname = Annotated[
    str, StringConstraints(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]([-a-z0-9]*[a-z0-9])?$")
]
Port = Annotated[int, Field(ge=1, le=65535)]


class Strict(BaseModel):
    """Base of every spec model: unknown fields are errors, field names are camelCase in YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel)


class ResourceList(Strict):
    cpu: Quantity
    memory: Quantity
    ephemeral_storage: Quantity = Field(alias="ephemeral-storage")


class Resources(Strict):
    """Requests and limits for cpu, memory and ephemeral-storage (all three required in both)."""

    requests: ResourceList
    limits: ResourceList

    def as_k8s(self, *, extra_requests: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
        req = {"cpu": self.requests.cpu, "memory": self.requests.memory}
        req["ephemeral-storage"] = self.requests.ephemeral_storage
        lim = {"cpu": self.limits.cpu, "memory": self.limits.memory}
        lim["ephemeral-storage"] = self.limits.ephemeral_storage
        for key, value in (extra_requests or {}).items():
            req[key] = value
            lim[key] = value
        return {"limits": lim, "requests": req}


class SecretRef(Strict):
    """Where the secret store keeps a value: the remote key and the property inside it."""

    remote_key: str = Field(min_length=1)
    property: str = Field(min_length=1)
