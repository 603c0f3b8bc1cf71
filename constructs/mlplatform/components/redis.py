"""The Redis cache: StatefulSet with volumeClaimTemplate, headless and client Services, config, auth, PDB.

The ServiceAccount and ConfigMap are cdk8s-plus L2 constructs. The StatefulSet and Services are k8s L1
classes: cdk8s-plus cannot express the exec readiness probe on a named port, ephemeral-storage in Mi, or
Services that target the container port by name.
"""

from __future__ import annotations

import cdk8s_plus_33 as kplus
from cdk8s_plus_33 import k8s

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import (
    NO_PRUNE,
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
from mlplatform.spec import Environment
from mlplatform.spec.platform import REDIS_PORT

REDIS_UID = 999  # the `redis` user of the official image
PORT_NAME = "redis"
PASSWORD_DIR = "/var/run/secrets/redis"  # noqa: S105  (a mount path)
CONF = "/etc/redis/redis.conf"
AUTH_DIR = "/etc/redis/auth"
AUTH_TEMPLATE = {
    "password": "{{ .password }}",
    "auth.conf": "requirepass {{ .password }}\nmasterauth {{ .password }}\n",
}


def redis_conf(env: Environment) -> str:
    """A redis.conf for a cache: bounded memory with an eviction policy, RDB snapshots for warm restarts."""
    return "\n".join(
        [
            f"port {REDIS_PORT}",
            "bind * -::*",
            "protected-mode yes",
            "dir /data",
            f"maxmemory {env.overlay.redis.maxmemory}",
            f"maxmemory-policy {env.platform.redis.maxmemory_policy}",
            "appendonly no",
            "save 300 100",
            f"include {AUTH_DIR}/auth.conf",
            "",
        ]
    )


def _command(replicas: int) -> list[str]:
    if replicas == 1:
        return ["redis-server", CONF]
    # every pod but redis-0 replicates from redis-0; the client Service sends traffic to redis-0 only
    primary = f"{names.REDIS_PRIMARY_POD}.{names.REDIS_HEADLESS}"
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


def _container(env: Environment) -> k8s.Container:
    over = env.overlay.redis
    tcp = k8s.TcpSocketAction(port=port(PORT_NAME))
    ping = f'REDISCLI_AUTH="$(cat {PASSWORD_DIR}/password)" redis-cli -p {REDIS_PORT} ping | grep -q PONG'
    return k8s.Container(
        name=names.REDIS,
        image=f"{env.platform.redis.image}@{over.image_digest}",
        image_pull_policy="IfNotPresent",
        command=_command(over.replicas),
        ports=[tcp_port(PORT_NAME, REDIS_PORT)],
        resources=resources(over.resources.as_k8s()),
        security_context=container_security_context(REDIS_UID),
        startup_probe=_probe(tcp, 2, 30),
        readiness_probe=_probe(k8s.ExecAction(command=["sh", "-c", ping]), 5, 3),
        liveness_probe=_probe(tcp, 10, 3),
        volume_mounts=[
            k8s.VolumeMount(name="data", mount_path="/data"),
            k8s.VolumeMount(name="config", mount_path=CONF, sub_path="redis.conf", read_only=True),
            k8s.VolumeMount(name="auth", mount_path=AUTH_DIR, read_only=True),
            k8s.VolumeMount(name="password", mount_path=PASSWORD_DIR, read_only=True),
        ],
    )


def _pod_spec(env: Environment) -> k8s.PodSpec:
    config = k8s.ConfigMapVolumeSource(name=names.REDIS_CONFIG, default_mode=0o444)
    return k8s.PodSpec(
        service_account_name=names.REDIS,
        automount_service_account_token=False,
        enable_service_links=False,
        security_context=pod_security_context(REDIS_UID),
        termination_grace_period_seconds=30,
        containers=[_container(env)],
        volumes=[
            k8s.Volume(name="config", config_map=config),
            secret_volume("auth", secret=names.REDIS_AUTH, key="auth.conf"),
            secret_volume("password", secret=names.REDIS_AUTH, key="password"),
        ],
    )


def _data_claim(env: Environment, labels: dict[str, str]) -> k8s.KubePersistentVolumeClaimProps:
    """The volumeClaimTemplate of each pod's /data; never pruned by Argo CD."""
    over = env.overlay.redis
    return k8s.KubePersistentVolumeClaimProps(
        metadata=k8s.ObjectMeta(name="data", labels=labels, annotations=dict(NO_PRUNE)),
        spec=k8s.PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            storage_class_name=over.storage_class,
            resources=k8s.VolumeResourceRequirements(requests={"storage": quantity(over.storage_size)}),
        ),
    )


def _service_port() -> k8s.ServicePort:
    return k8s.ServicePort(name=PORT_NAME, port=REDIS_PORT, target_port=port(PORT_NAME), protocol="TCP")


class RedisCache(Construct):
    """The shared Redis cache of one environment."""

    def __init__(self, scope: Construct, id: str, *, env: Environment) -> None:
        super().__init__(scope, id)
        common = names.common(platform=env.platform.name, name=names.REDIS, component="cache")
        meta = Meta(namespace=env.namespace, labels=common, wave=WAVE_DATA)
        selector = names.select(names.REDIS)
        service_account(self, meta=meta, name=names.REDIS)
        external_secret(
            self,
            "auth",
            meta=meta,
            name=names.REDIS_AUTH,
            store=env.overlay.secret_store,
            ref=env.platform.redis.password,
            key="password",
            template=AUTH_TEMPLATE,
        )
        kplus.ConfigMap(
            self, "config", metadata=meta.api(names.REDIS_CONFIG), data={"redis.conf": redis_conf(env)}
        )
        headless = k8s.ServiceSpec(
            cluster_ip="None", publish_not_ready_addresses=True, selector=selector, ports=[_service_port()]
        )
        k8s.KubeService(self, "headless", metadata=meta.l1(names.REDIS_HEADLESS), spec=headless)
        primary = selector | {names.STATEFULSET_POD_NAME: names.REDIS_PRIMARY_POD}
        client = k8s.ServiceSpec(type="ClusterIP", selector=primary, ports=[_service_port()])
        k8s.KubeService(self, "client", metadata=meta.l1(names.REDIS), spec=client)
        replicas = env.overlay.redis.replicas
        spec = k8s.StatefulSetSpec(
            service_name=names.REDIS_HEADLESS,
            replicas=replicas,
            selector=k8s.LabelSelector(match_labels=selector),
            persistent_volume_claim_retention_policy=k8s.StatefulSetPersistentVolumeClaimRetentionPolicy(
                when_deleted="Retain", when_scaled="Retain"
            ),
            template=k8s.PodTemplateSpec(metadata=k8s.ObjectMeta(labels=common), spec=_pod_spec(env)),
            volume_claim_templates=[_data_claim(env, common)],
        )
        k8s.KubeStatefulSet(self, "statefulset", metadata=meta.l1(names.REDIS), spec=spec)
        if replicas > 1:
            budget = k8s.PodDisruptionBudgetSpec(
                max_unavailable=port(1), selector=k8s.LabelSelector(match_labels=selector)
            )
            k8s.KubePodDisruptionBudget(self, "disruption-budget", metadata=meta.l1(names.REDIS), spec=budget)
