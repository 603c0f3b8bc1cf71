"""The Redis cache and the jobs Redis: StatefulSet with volumeClaimTemplate, headless and client Services,
config, auth, PDB. Both are one `RedisStatefulSet` with their own names and redis.conf policy (`Store`).

The ServiceAccount and ConfigMap are cdk8s-plus L2 constructs. The StatefulSet and Services are k8s L1
classes: cdk8s-plus cannot express the exec readiness probe on a named port, ephemeral-storage in Mi, or
Services that target the container port by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cdk8s_plus_33 as kplus
from cdk8s_plus_33 import k8s

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import (
    KEEP,
    WAVE_DATA,
    Meta,
    container_security_context,
    pod_security_context,
    port,
    quantity,
    resources,
    secret_volume,
    service_account,
    tcp_port,
)
from mlplatform.components.secrets import external_secret
from mlplatform.runtime_contract import REDIS_PASSWORD_DIR, REDIS_PASSWORD_FILE, REDIS_PORT, REDIS_PORT_NAME

if TYPE_CHECKING:
    from mlplatform.schema.common import SecretRef
    from mlplatform.schema.overlay import JobsRedis, RedisOverlay
    from mlplatform.schema.platform import Redis

REDIS_UID = 10002  # the Redis image's user (tools/imagebuild/definitions.py): non-root, >= 10000
CONF = "/etc/redis/redis.conf"
AUTH_DIR = "/etc/redis/auth"
#: The auth Secret: the password (the key the inference pods mount too) and redis.conf's include.
AUTH_TEMPLATE = {
    REDIS_PASSWORD_FILE: "{{ .password }}",
    "auth.conf": "requirepass {{ .password }}\nmasterauth {{ .password }}\n",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Store:
    """One Redis StatefulSet: its names, image, overlay settings, password and redis.conf policy."""

    name: str
    #: The image, pinned by digest.
    image: str
    headless: str
    config: str
    auth: str
    primary_pod: str
    component: str
    overlay: RedisOverlay | JobsRedis
    password: SecretRef
    replicas: int
    #: The lines of redis.conf after maxmemory: eviction and persistence.
    policy: tuple[str, ...]
    maxmemory: str


def cache_store(*, redis: Redis, over: RedisOverlay) -> Store:
    """The cache (platform.yaml's `redis`, the overlay's `redis`): bounded memory with an eviction policy,
    RDB snapshots for warm restarts."""
    policy = (f"maxmemory-policy {redis.maxmemory_policy}", "appendonly no", "save 300 100")
    return Store(
        name=names.REDIS,
        image=f"{redis.image}@{over.image_digest}",
        headless=names.REDIS_HEADLESS,
        config=names.REDIS_CONFIG,
        auth=names.REDIS_AUTH,
        primary_pod=names.REDIS_PRIMARY_POD,
        component="cache",
        overlay=over,
        password=redis.password,
        replicas=over.replicas,
        policy=policy,
        maxmemory=over.maxmemory,
    )


def jobs_store(*, image: str, over: JobsRedis, password: SecretRef, maxmemory: str) -> Store:
    """The job queue and quota counters (the cache's image, `image`, at the overlay's digest): never evicts
    (a full store refuses writes), every write on disk before it is acknowledged (AOF, fsync always), no
    RDB snapshots."""
    policy = ("maxmemory-policy noeviction", "appendonly yes", "appendfsync always", 'save ""')
    return Store(
        name=names.JOBS_REDIS,
        image=f"{image}@{over.image_digest}",
        headless=names.JOBS_REDIS_HEADLESS,
        config=names.JOBS_REDIS_CONFIG,
        auth=names.JOBS_REDIS_AUTH,
        primary_pod=names.JOBS_REDIS_PRIMARY_POD,
        component="jobs-store",
        overlay=over,
        password=password,
        replicas=1,
        policy=policy,
        maxmemory=maxmemory,
    )


def redis_conf(store: Store) -> str:
    """The store's redis.conf: port, bind, bounded memory, its policy lines, the password include."""
    return "\n".join(
        [
            f"port {REDIS_PORT}",
            "bind * -::*",
            "protected-mode yes",
            "dir /data",
            f"maxmemory {store.maxmemory}",
            *store.policy,
            f"include {AUTH_DIR}/auth.conf",
            "",
        ]
    )


def _command(store: Store) -> list[str]:
    if store.replicas == 1:
        return ["redis-server", CONF]
    # every pod but <name>-0 replicates from <name>-0; the client Service sends traffic to <name>-0 only
    primary = f"{store.primary_pod}.{store.headless}"
    return [
        "sh",
        "-c",
        f'if [ "${{HOSTNAME##*-}}" = 0 ]; then exec redis-server {CONF}; fi; '
        f"exec redis-server {CONF} --replicaof {primary} {REDIS_PORT}",
    ]


def _probe(action: k8s.TcpSocketAction | k8s.ExecAction, period: int, failures: int) -> k8s.Probe:
    tcp = action if isinstance(action, k8s.TcpSocketAction) else None
    exec_ = action if isinstance(action, k8s.ExecAction) else None
    return k8s.Probe(
        tcp_socket=tcp, exec=exec_, period_seconds=period, failure_threshold=failures, timeout_seconds=2
    )


def _container(store: Store) -> k8s.Container:
    over = store.overlay
    tcp = k8s.TcpSocketAction(port=port(REDIS_PORT_NAME))
    password = f"{REDIS_PASSWORD_DIR}/{REDIS_PASSWORD_FILE}"
    ping = f'REDISCLI_AUTH="$(cat {password})" redis-cli -p {REDIS_PORT} ping | grep -q PONG'
    return k8s.Container(
        name=names.REDIS,
        image=store.image,
        image_pull_policy="IfNotPresent",
        command=_command(store),
        ports=[tcp_port(REDIS_PORT_NAME, REDIS_PORT)],
        resources=resources(over.resources.as_k8s()),
        security_context=container_security_context(REDIS_UID),
        startup_probe=_probe(tcp, 2, 30),
        readiness_probe=_probe(k8s.ExecAction(command=["sh", "-c", ping]), 5, 3),
        liveness_probe=_probe(tcp, 10, 3),
        volume_mounts=[
            k8s.VolumeMount(name="data", mount_path="/data"),
            k8s.VolumeMount(name="config", mount_path=CONF, sub_path="redis.conf", read_only=True),
            k8s.VolumeMount(name="auth", mount_path=AUTH_DIR, read_only=True),
            k8s.VolumeMount(name="password", mount_path=REDIS_PASSWORD_DIR, read_only=True),
        ],
    )


def _pod_spec(store: Store) -> k8s.PodSpec:
    config = k8s.ConfigMapVolumeSource(name=store.config, default_mode=0o444)
    return k8s.PodSpec(
        service_account_name=store.name,
        automount_service_account_token=False,
        enable_service_links=False,
        security_context=pod_security_context(REDIS_UID),
        termination_grace_period_seconds=30,
        containers=[_container(store)],
        volumes=[
            k8s.Volume(name="config", config_map=config),
            secret_volume("auth", secret=store.auth, key="auth.conf"),
            secret_volume("password", secret=store.auth, key=REDIS_PASSWORD_FILE),
        ],
    )


def _data_claim(store: Store, labels: dict[str, str]) -> k8s.KubePersistentVolumeClaimProps:
    """The volumeClaimTemplate of each pod's /data; never pruned by Argo CD."""
    over = store.overlay
    return k8s.KubePersistentVolumeClaimProps(
        metadata=k8s.ObjectMeta(name="data", labels=labels, annotations=dict(KEEP)),
        spec=k8s.PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            storage_class_name=over.storage_class,
            resources=k8s.VolumeResourceRequirements(requests={"storage": quantity(over.storage_size)}),
        ),
    )


def _service_port() -> k8s.ServicePort:
    return k8s.ServicePort(
        name=REDIS_PORT_NAME, port=REDIS_PORT, target_port=port(REDIS_PORT_NAME), protocol="TCP"
    )


class RedisStatefulSet(Construct):
    """One Redis of one environment (the cache, `cache_store`, or the jobs Redis, `jobs_store`):
    ServiceAccount, auth ExternalSecret from `secret_store`, config, Services, StatefulSet, and a PDB where
    it runs more than one pod."""

    def __init__(
        self, scope: Construct, id: str, *, store: Store, namespace: str, platform: str, secret_store: str
    ) -> None:
        super().__init__(scope, id)
        common = names.common(platform=platform, name=store.name, component=store.component)
        meta = Meta(namespace=namespace, labels=common, wave=WAVE_DATA)
        selector = names.select(store.name)
        service_account(self, meta=meta, name=store.name)
        external_secret(
            self,
            "auth",
            meta=meta,
            name=store.auth,
            store=secret_store,
            ref=store.password,
            key=REDIS_PASSWORD_FILE,
            template=AUTH_TEMPLATE,
        )
        kplus.ConfigMap(
            self, "config", metadata=meta.api(store.config), data={"redis.conf": redis_conf(store)}
        )
        headless = k8s.ServiceSpec(
            cluster_ip="None", publish_not_ready_addresses=True, selector=selector, ports=[_service_port()]
        )
        k8s.KubeService(self, "headless", metadata=meta.l1(store.headless), spec=headless)
        primary = selector | {names.STATEFULSET_POD_NAME: store.primary_pod}
        client = k8s.ServiceSpec(type="ClusterIP", selector=primary, ports=[_service_port()])
        k8s.KubeService(self, "client", metadata=meta.l1(store.name), spec=client)
        spec = k8s.StatefulSetSpec(
            service_name=store.headless,
            replicas=store.replicas,
            selector=k8s.LabelSelector(match_labels=selector),
            persistent_volume_claim_retention_policy=k8s.StatefulSetPersistentVolumeClaimRetentionPolicy(
                when_deleted="Retain", when_scaled="Retain"
            ),
            template=k8s.PodTemplateSpec(metadata=k8s.ObjectMeta(labels=common), spec=_pod_spec(store)),
            volume_claim_templates=[_data_claim(store, common)],
        )
        k8s.KubeStatefulSet(self, "statefulset", metadata=meta.l1(store.name), spec=spec)
        if store.replicas > 1:
            budget = k8s.PodDisruptionBudgetSpec(
                max_unavailable=port(1), selector=k8s.LabelSelector(match_labels=selector)
            )
            k8s.KubePodDisruptionBudget(self, "disruption-budget", metadata=meta.l1(store.name), spec=budget)
