"""One environment as a cdk8s Chart: the one place that reads the whole `Environment` and hands each
construct of `components/` the narrow props it needs, in sync-wave order."""

from __future__ import annotations

from constructs import Construct
from mlplatform import mesh, network
from mlplatform.components.base import PlatformChart
from mlplatform.components.inference import InferenceService, ServiceProps
from mlplatform.components.jobs import JobWorker
from mlplatform.components.mesh import MeshPolicies
from mlplatform.components.namespace import NamespaceBaseline
from mlplatform.components.network_policies import NetworkPolicies
from mlplatform.components.redis import RedisStatefulSet, cache_store, jobs_store
from mlplatform.components.settings import SettingsProps
from mlplatform.schema import Environment
from mlplatform.schema.overlay import KSERVE_RUNTIMES


class EnvironmentChart(PlatformChart):
    """Everything `dist/<env>/` holds. The chart sets no namespace: each object carries its own."""

    def __init__(self, scope: Construct, id: str, *, env: Environment) -> None:
        super().__init__(scope, id)
        namespace, platform, store = env.namespace, env.platform.name, env.overlay.secret_store
        on_mesh = env.overlay.mesh == "istio"
        NamespaceBaseline(
            self, "namespace", namespace=namespace, platform=platform, quota=env.overlay.quota, mesh=on_mesh
        )
        policies = network.policies(env)
        NetworkPolicies(self, "network", namespace=namespace, platform=platform, policies=policies)
        if on_mesh:
            authorizations = mesh.authorizations(env)
            MeshPolicies(self, "mesh", namespace=namespace, platform=platform, authorizations=authorizations)
        cache = cache_store(redis=env.platform.redis, over=env.overlay.redis)
        RedisStatefulSet(
            self, "redis", store=cache, namespace=namespace, platform=platform, secret_store=store
        )
        AsyncJobs(self, "jobs", env=env)
        for name in env.platform.services:
            InferenceService(self, f"service-{name}", props=service_props(env, name))
        if on_mesh:
            mesh.size_sidecars(self)


class AsyncJobs(Construct):
    """Everything jobs add to an environment that enables them (`jobs.enabled`), nothing otherwise: the jobs
    Redis and each service's job worker (components/jobs.py)."""

    def __init__(self, scope: Construct, id: str, *, env: Environment) -> None:
        super().__init__(scope, id)
        jobs, platform_jobs = env.overlay.jobs, env.platform.jobs
        if not jobs.enabled or jobs.redis is None or platform_jobs is None:
            return
        store = jobs_store(
            image=env.platform.redis.image,
            over=jobs.redis,
            password=platform_jobs.password,
            maxmemory=jobs.maxmemory,
        )
        RedisStatefulSet(
            self,
            "redis",
            store=store,
            namespace=env.namespace,
            platform=env.platform.name,
            secret_store=env.overlay.secret_store,
        )
        for name in env.platform.services:
            props = service_props(env, name)
            JobWorker(
                self,
                f"worker-{name}",
                namespace=env.namespace,
                pod=props.worker_pod(),
                settings=props.settings,
                jobs=jobs,
                monitored=env.overlay.features.service_monitor,
            )


def service_props(env: Environment, name: str) -> ServiceProps:
    """What service `name` of `env` needs: its spec and overlay, and what the rest of the spec decides."""
    spec, overlay = env.platform.services[name], env.overlay.services[name]
    scraped = env.overlay.features.service_monitor and spec.metrics_token is not None
    settings = SettingsProps(
        service=name,
        models=tuple(spec.models),
        grpc=env.serves_grpc(name),
        metrics_token=scraped,
        use_cache=spec.use_cache,
        tuning=spec.tuning,
        tuning_override=overlay.tuning,
        jobs=env.overlay.jobs if env.overlay.jobs.enabled else None,
        quotas=env.overlay.quotas,
        identity=overlay.identity,
    )
    remote = tuple(env.remote_sources(spec.models))
    canary_remote = tuple(env.remote_sources(overlay.canary.models)) if overlay.canary is not None else ()
    sha256 = {
        (m.name, m.version): env.catalog.entry(m.name, m.version).sha256 for m, _ in remote + canary_remote
    }
    return ServiceProps(
        name=name,
        namespace=env.namespace,
        platform=env.platform.name,
        secret_store=env.overlay.secret_store,
        spec=spec,
        overlay=overlay,
        settings=settings,
        routing=env.overlay.routing,
        kserve=env.overlay.runtime in KSERVE_RUNTIMES,
        serverless=env.overlay.runtime == "kserve-serverless",
        jobs=env.overlay.jobs.enabled,
        topology_spread=env.overlay.features.topology_spread,
        remote=remote,
        canary_remote=canary_remote,
        remote_sha256=sha256,
        jwks_file=_jwks_file(env, name),
    )


def _jwks_file(env: Environment, service: str) -> str | None:
    """The JWKS file's content where `service` renders its issuer's JWKS ConfigMap: services of one issuer
    share it, rendered once, with the first of them (by name)."""
    identity = env.overlay.services[service].identity
    config_map = identity.jwks.config_map if identity is not None else None
    if config_map is None or config_map.file is None:
        return None
    first = min(
        name
        for name, overlay in env.overlay.services.items()
        if overlay.identity is not None
        and overlay.identity.jwks.config_map is not None
        and overlay.identity.jwks.config_map.name == config_map.name
    )
    return env.files[config_map.file] if service == first else None
