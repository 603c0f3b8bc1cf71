"""The Redis cache: StatefulSet with volumeClaimTemplate, headless and client Services, config, auth, PDB."""

from __future__ import annotations

from typing import Any

from constructs import Construct
from mlplatform import labels
from mlplatform.components.base import (
    NO_PRUNE,
    WAVE_DATA,
    Component,
    container_security_context,
    metadata,
    pod_security_context,
    service_account,
)
from mlplatform.components.secrets import external_secret
from mlplatform.spec import Environment
from mlplatform.spec.platform import REDIS_PORT

NAME = "redis"
HEADLESS = "redis-headless"
AUTH_SECRET = "redis-auth"  # noqa: S105  (the Secret's name)
REDIS_UID = 999  # the `redis` user of the official image
PASSWORD_DIR = "/var/run/secrets/redis"  # noqa: S105  (a mount path)
PRIMARY_POD = f"{NAME}-0"


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
            "include /etc/redis/auth/auth.conf",
            "",
        ]
    )


def redis_manifests(env: Environment) -> list[dict[str, Any]]:
    ns = env.namespace
    spec = env.platform.redis
    over = env.overlay.redis
    common = labels.common(platform=env.platform.name, name=NAME, component="cache")
    selector = labels.select(NAME)

    def meta(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        return metadata(name=name, namespace=ns, labels=common, wave=WAVE_DATA, annotations=annotations)

    command = ["redis-server", "/etc/redis/redis.conf"]
    if over.replicas > 1:
        # every pod but redis-0 replicates from redis-0; the client Service sends traffic to redis-0 only
        command = [
            "sh",
            "-c",
            'if [ "${HOSTNAME##*-}" = 0 ]; then exec redis-server /etc/redis/redis.conf; fi; '
            f"exec redis-server /etc/redis/redis.conf --replicaof {PRIMARY_POD}.{HEADLESS} {REDIS_PORT}",
        ]
    ping = f'REDISCLI_AUTH="$(cat {PASSWORD_DIR}/password)" redis-cli -p {REDIS_PORT} ping | grep -q PONG'
    container = {
        "name": NAME,
        "image": f"{spec.image}@{over.image_digest}",
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        "resources": over.resources.as_k8s(),
        "securityContext": container_security_context(REDIS_UID),
        "startupProbe": {
            "tcpSocket": {"port": "redis"},
            "periodSeconds": 2,
            "failureThreshold": 30,
            "timeoutSeconds": 2,
        },
        "readinessProbe": {
            "exec": {"command": ["sh", "-c", ping]},
            "periodSeconds": 5,
            "failureThreshold": 3,
            "timeoutSeconds": 2,
        },
        "livenessProbe": {
            "tcpSocket": {"port": "redis"},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "timeoutSeconds": 2,
        },
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {
                "name": "config",
                "mountPath": "/etc/redis/redis.conf",
                "subPath": "redis.conf",
                "readOnly": True,
            },
            {"name": "auth", "mountPath": "/etc/redis/auth", "readOnly": True},
            {"name": "password", "mountPath": PASSWORD_DIR, "readOnly": True},
        ],
    }
    pod_spec = {
        "serviceAccountName": NAME,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(REDIS_UID),
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": "redis-config", "defaultMode": 0o444}},
            {
                "name": "auth",
                "secret": {
                    "secretName": AUTH_SECRET,
                    "defaultMode": 0o440,
                    "items": [{"key": "auth.conf", "path": "auth.conf"}],
                },
            },
            {
                "name": "password",
                "secret": {
                    "secretName": AUTH_SECRET,
                    "defaultMode": 0o440,
                    "items": [{"key": "password", "path": "password"}],
                },
            },
        ],
    }
    manifests: list[dict[str, Any]] = [
        service_account(name=NAME, namespace=ns, labels=common, wave=WAVE_DATA),
        external_secret(
            name=AUTH_SECRET,
            namespace=ns,
            labels=common,
            wave=WAVE_DATA,
            store=env.overlay.secret_store,
            ref=spec.password,
            key="password",
            template={
                "password": "{{ .password }}",
                "auth.conf": "requirepass {{ .password }}\nmasterauth {{ .password }}\n",
            },
        ),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("redis-config"),
            "data": {"redis.conf": redis_conf(env)},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(HEADLESS),
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": selector,
                "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(NAME),
            "spec": {
                "type": "ClusterIP",
                "selector": selector | {"statefulset.kubernetes.io/pod-name": PRIMARY_POD},
                "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": meta(NAME),
            "spec": {
                "serviceName": HEADLESS,
                "replicas": over.replicas,
                "selector": {"matchLabels": selector},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "template": {"metadata": {"labels": common}, "spec": pod_spec},
                "volumeClaimTemplates": [
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "data", "labels": common, "annotations": dict(NO_PRUNE)},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "storageClassName": over.storage_class,
                            "resources": {"requests": {"storage": over.storage_size}},
                        },
                    }
                ],
            },
        },
    ]
    if over.replicas > 1:
        manifests.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": meta(NAME),
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
            }
        )
    return manifests


class RedisCache(Component):
    """The shared Redis cache of one environment."""

    def __init__(self, scope: Construct, id: str, *, env: Environment) -> None:
        super().__init__(scope, id)
        for manifest in redis_manifests(env):
            self.emit(manifest)
