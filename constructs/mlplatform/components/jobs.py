"""Asynchronous jobs (issue 14): per service a job worker that KEDA scales on the queue (the jobs Redis is
`redis.jobs_store`'s; `mlplatform.chart` adds both where an overlay enables jobs).

The worker runs the service's image with `python -m inference_service.jobs.worker` (the service's model and
ORT settings, the jobs Redis and no API keys: it takes work from the queue, never from callers). Its
ScaledObject uses KEDA's redis-streams scaler on `XLEN jobs-<service>:stream`, the service's own stream
(`streamLength`, no `consumerGroup`:
with a group KEDA 2.21 counts pending entries only, which stay 0 at 0 workers and would never wake them; see
apps/inference/README.md "Jobs and quotas"). The Deployment, Service and PDB are the k8s L1 classes (as the
service's, `components.inference`); the ScaledObject and TriggerAuthentication are the classes `cdk8s import`
made from KEDA's CRDs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cdk8s_plus_33 as kplus
from cdk8s_plus_33 import k8s
from mlplatform_crds.sh import keda

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import WAVE_SERVICES, Meta, port, service_account
from mlplatform.components.monitoring import service_monitor
from mlplatform.components.pods import PodProps, pod_template
from mlplatform.components.settings import SettingsProps, worker_settings
from mlplatform.runtime_contract import HTTP_PORT_NAME, INFERENCE_PORT, REDIS_PASSWORD_FILE, REDIS_PORT

if TYPE_CHECKING:
    from mlplatform.schema.overlay import Jobs


def scaler_address(namespace: str) -> str:
    """The jobs Redis as KEDA's operator reaches it: from its own namespace, so by the full Service name."""
    return f"{names.JOBS_REDIS}.{namespace}.svc.cluster.local:{REDIS_PORT}"


def worker_autoscaler(
    scope: Construct, *, meta: Meta, namespace: str, service: str, worker: str, jobs: Jobs
) -> None:
    """A TriggerAuthentication with the jobs Redis's password, and the ScaledObject on the stream's length."""
    auth_ref = keda.TriggerAuthenticationSpecSecretTargetRef(
        parameter="password", name=names.JOBS_REDIS_AUTH, key=REDIS_PASSWORD_FILE
    )
    keda.TriggerAuthentication(
        scope,
        "trigger-auth",
        metadata=meta.api(f"{worker}-{names.JOBS_REDIS_TRIGGER_AUTH}"),
        spec=keda.TriggerAuthenticationSpec(secret_target_ref=[auth_ref]),
    )
    trigger = keda.ScaledObjectSpecTriggers(
        type="redis-streams",
        metadata={
            "address": scaler_address(namespace),
            "databaseIndex": "0",
            "stream": names.ServiceNames(service).jobs_stream,
            "streamLength": str(jobs.stream_length_per_worker),
        },
        authentication_ref=keda.ScaledObjectSpecTriggersAuthenticationRef(
            name=f"{worker}-{names.JOBS_REDIS_TRIGGER_AUTH}"
        ),
    )
    scaled = keda.ScaledObjectSpec(
        scale_target_ref=keda.ScaledObjectSpecScaleTargetRef(
            api_version="apps/v1", kind="Deployment", name=worker
        ),
        min_replica_count=jobs.min_workers,
        max_replica_count=jobs.max_workers,
        triggers=[trigger],
    )
    keda.ScaledObject(scope, "autoscaler", metadata=meta.api(worker), spec=scaled)


class JobWorker(Construct):
    """One service's job worker: ConfigMap, Deployment (replicas owned by KEDA), Service for its metrics,
    PDB, ScaledObject with its TriggerAuthentication, and a ServiceMonitor where the environment has them.

    `pod`: the worker's pods (`worker=True`, `jobs=True`); `settings`: its service's (`worker_settings`
    drops what only the API reads)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        namespace: str,
        pod: PodProps,
        settings: SettingsProps,
        jobs: Jobs,
        monitored: bool,
    ) -> None:
        super().__init__(scope, id)
        service = pod.version.service
        svc = names.ServiceNames(service)
        worker = svc.worker
        common = names.common(platform=pod.platform, name=worker, component="worker")
        meta = Meta(namespace=namespace, labels=common, wave=WAVE_SERVICES)
        service_account(self, meta=meta, name=svc.worker_service_account)
        kplus.ConfigMap(self, "config", metadata=meta.api(svc.worker_config), data=worker_settings(settings))
        selector = k8s.LabelSelector(match_labels=pod.selector)
        strategy = k8s.DeploymentStrategy(
            type="RollingUpdate",
            rolling_update=k8s.RollingUpdateDeployment(max_surge=port(1), max_unavailable=port(0)),
        )
        deployment = k8s.DeploymentSpec(
            revision_history_limit=5, selector=selector, strategy=strategy, template=pod_template(pod)
        )
        k8s.KubeDeployment(self, "deployment", metadata=meta.l1(worker), spec=deployment)
        http = k8s.ServicePort(
            name=HTTP_PORT_NAME, port=INFERENCE_PORT, target_port=port(HTTP_PORT_NAME), protocol="TCP"
        )
        service_spec = k8s.ServiceSpec(type="ClusterIP", selector=pod.selector, ports=[http])
        k8s.KubeService(self, "service", metadata=meta.l1(worker), spec=service_spec)
        budget = k8s.PodDisruptionBudgetSpec(
            max_unavailable=port(1), selector=selector, unhealthy_pod_eviction_policy="AlwaysAllow"
        )
        k8s.KubePodDisruptionBudget(self, "disruption-budget", metadata=meta.l1(worker), spec=budget)
        worker_autoscaler(self, meta=meta, namespace=namespace, service=service, worker=worker, jobs=jobs)
        if monitored:
            service_monitor(self, meta=meta, name=worker, namespace=namespace)
