"""Field types shared by the platform spec and the overlays."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from mlplatform.schema.errors import FieldPath, FieldProblems
from mlplatform.schema.quantity import ALLOWED as QUANTITY_ALLOWED
from mlplatform.schema.quantity import PATTERN as QUANTITY_PATTERN
from mlplatform.schema.quantity import Quantity, parse

DNS_LABEL_PATTERN = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
IMAGE_REPOSITORY_PATTERN = r"^[a-z0-9]+([._/:-][a-z0-9]+)*$"
HOSTNAME_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]([-a-z0-9]*[a-z0-9])?$"


def _no_tag_or_digest(value: Any) -> Any:
    """An image repository must not carry a tag or digest: each overlay pins the image by its digest.

    A `:` after the last `/` is a tag (before it, a registry port: `registry:5000/team/image` is fine).
    """
    if isinstance(value, str) and ("@" in value or ":" in value.rpartition("/")[2]):
        raise ValueError("allowed: a repository without tag or digest (each overlay's imageDigest pins it)")
    return value


#: What each pattern allows, in words (the loader says this instead of printing the regular expression).
ALLOWED_BY_PATTERN = {QUANTITY_PATTERN: QUANTITY_ALLOWED}


def matching(pattern: str, allowed: str) -> StringConstraints:
    """A string constraint whose error message says `allowed` (in words) rather than the expression."""
    ALLOWED_BY_PATTERN[pattern] = allowed
    return StringConstraints(pattern=pattern)


#: A DNS-1123 label: what Kubernetes accepts as a Service, Deployment or Namespace name.
DnsLabel = Annotated[
    str,
    matching(
        DNS_LABEL_PATTERN, "a DNS-1123 label (lowercase letters, digits, '-'; a letter first; 63 at most)"
    ),
]
#: An OCI image digest.
Digest = Annotated[str, matching(DIGEST_PATTERN, "sha256:<64 lowercase hex digits>")]
#: An image repository without tag or digest, e.g. `ghcr.io/example/inference` (a registry port is fine).
ImageRepository = Annotated[
    str,
    matching(IMAGE_REPOSITORY_PATTERN, "an image repository such as ghcr.io/example/inference"),
    BeforeValidator(_no_tag_or_digest),
]
#: A host name (RFC 1123).
Hostname = Annotated[
    str, matching(HOSTNAME_PATTERN, "a lowercase DNS host name such as inference.example.com")
]
#: An absolute path without spaces (a URL path or a folder).
AbsolutePath = Annotated[str, matching(r"^/[^\s]*$", "an absolute path such as /models (no spaces)")]
Port = Annotated[int, Field(ge=1, le=65535)]
DURATION_PATTERN = r"^([1-9][0-9]*(h|m|s))+$"
#: A duration as Argo CD reads it (Go's time.ParseDuration), restricted to whole hours, minutes and seconds.
Duration = Annotated[
    str, matching(DURATION_PATTERN, "a duration of whole h, m and s such as 5s, 3m or 1h30m")
]
_DURATION_UNITS = {"h": 3600, "m": 60, "s": 1}


def seconds(duration: str) -> int:
    """A `Duration` in seconds ("1h30m" -> 5400)."""
    return sum(int(n) * _DURATION_UNITS[u] for n, u in re.findall(r"([0-9]+)(h|m|s)", duration))


__all__ = ["Quantity"]


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

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Resources:
        problems: list[tuple[FieldPath, str]] = []
        for name in ("cpu", "memory", "ephemeral_storage"):
            request, limit = getattr(self.requests, name), getattr(self.limits, name)
            if parse(limit) < parse(request):
                key = ResourceList.model_fields[name].alias or name
                problems.append(
                    (
                        ("limits", key),
                        f"limit {limit!r} is below the request {request!r} (requests.{key}); "
                        "allowed: a limit >= its request",
                    )
                )
        if problems:
            raise FieldProblems(problems)
        return self

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
