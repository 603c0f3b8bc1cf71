"""`overlays/platform.yaml`: what every environment shares."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlplatform.spec.common import DnsLabel, ImageRepository, SecretRef, Strict

#: Ports of the runtime contract (README "Runtime contract").
INFERENCE_PORT = 8080
REDIS_PORT = 6379


class ArgoCd(Strict):
    """Where Argo CD reads this repository from and where its own objects live."""

    repo_url: str = Field(pattern=r"^(https://|ssh://|git@)[^\s]+$")
    target_revision: str = Field(min_length=1)
    namespace: DnsLabel = "argocd"
    project: DnsLabel


class Peer(Strict):
    """A workload outside the platform's namespaces (ingress controller, metrics scraper)."""

    namespace: DnsLabel
    pod_labels: dict[str, str] = Field(min_length=1)


class Model(Strict):
    name: DnsLabel
    version: str = Field(pattern=r"^[0-9]+$")


class Tuning(Strict):
    """INFERENCE_* tuning settings; an overlay may override any of them."""

    cache_ttl_seconds: int | None = Field(default=None, ge=0)
    max_batch_size: int | None = Field(default=None, ge=1)
    max_batch_wait_ms: int | None = Field(default=None, ge=0)
    ort_intra_op_threads: int | None = Field(default=None, ge=1)
    execution_providers: list[str] | None = None


class Service(Strict):
    """A model-serving service; runs the inference service image with the given models."""

    image: ImageRepository
    models: list[Model] = Field(min_length=1)
    use_cache: bool = True
    api_keys: SecretRef
    tuning: Tuning = Tuning()


class Redis(Strict):
    """The shared Redis cache."""

    image: ImageRepository
    maxmemory_policy: Literal[
        "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-ttl"
    ] = "allkeys-lru"
    password: SecretRef


class Connection(Strict):
    """`from` may open connections to `to` on the target's port; names are services, `redis` or peers."""

    source: DnsLabel = Field(alias="from")
    target: DnsLabel = Field(alias="to")


class Platform(Strict):
    """The whole platform.yaml."""

    name: DnsLabel
    argocd: ArgoCd
    peers: dict[DnsLabel, Peer] = Field(default_factory=dict)
    redis: Redis
    services: dict[DnsLabel, Service] = Field(min_length=1)
    connections: list[Connection] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_names(self) -> Platform:
        components = self.component_names()
        clash = (set(self.services) | {"redis"}) & set(self.peers)
        if clash:
            raise ValueError(
                f"peers {sorted(clash)} reuse a service name; peer names must differ from services"
            )
        if "redis" in self.services:
            raise ValueError("'redis' is the cache's name; choose another service name")
        for i, conn in enumerate(self.connections):
            for side, name in (("from", conn.source), ("to", conn.target)):
                if name not in components:
                    raise ValueError(
                        f"connections[{i}].{side}: unknown component {name!r}; allowed: {sorted(components)}"
                    )
            if conn.target in self.peers:
                raise ValueError(
                    f"connections[{i}].to: {conn.target!r} is an external peer; "
                    "only services and 'redis' accept connections"
                )
            if conn.source == conn.target:
                raise ValueError(f"connections[{i}]: a component cannot connect to itself ({conn.source!r})")
        seen = [(c.source, c.target) for c in self.connections]
        dupes = sorted({e for e in seen if seen.count(e) > 1})
        if dupes:
            raise ValueError(f"connections: duplicate edges {dupes}")
        for name, svc in self.services.items():
            if svc.use_cache and not any(c.source == name and c.target == "redis" for c in self.connections):
                raise ValueError(
                    f"services.{name}.useCache is true but connections has no edge from {name!r} to 'redis'"
                )
        return self

    def component_names(self) -> set[str]:
        return set(self.services) | {"redis"} | set(self.peers)

    def port_of(self, component: str) -> tuple[str, int]:
        """The named port a component accepts connections on."""
        if component == "redis":
            return "redis", REDIS_PORT
        return "http", INFERENCE_PORT
