"""One environment as a cdk8s Chart: every concern's construct, in sync-wave order."""

from __future__ import annotations

from constructs import Construct
from mlplatform.components.base import PlatformChart
from mlplatform.components.inference import InferenceService
from mlplatform.components.jobs import AsyncJobs
from mlplatform.components.namespace import NamespaceBaseline
from mlplatform.components.network_policies import NetworkPolicies
from mlplatform.components.redis import RedisCache
from mlplatform.schema import Environment


class EnvironmentChart(PlatformChart):
    """Everything `dist/<env>/` holds. The chart sets no namespace: each object carries its own."""

    def __init__(self, scope: Construct, id: str, *, env: Environment) -> None:
        super().__init__(scope, id)
        NamespaceBaseline(self, "namespace", env=env)
        NetworkPolicies(self, "network", env=env)
        RedisCache(self, "redis", env=env)
        AsyncJobs(self, "jobs", env=env)
        for name in env.platform.services:
            InferenceService(self, f"service-{name}", env=env, service=name)
