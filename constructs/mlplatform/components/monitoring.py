"""The ServiceMonitor the Prometheus Operator reads: a service's API, or its job worker's /metrics."""

from __future__ import annotations

from mlplatform_crds.com.coreos import monitoring

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import Meta
from mlplatform.runtime_contract import HTTP_PORT_NAME, METRICS_PATH, METRICS_TOKEN_FILE

SCRAPE_SECONDS = 30
SCRAPE_INTERVAL = f"{SCRAPE_SECONDS}s"


def service_monitor(
    scope: Construct, *, meta: Meta, name: str, namespace: str, token_secret: str | None = None
) -> None:
    """Prometheus scrapes every version of `name` on the named port (one ServiceMonitor); with
    `token_secret`, sending the scraper's token from that Secret (a service's `/metrics` names the models:
    never anonymous; a job worker's is reachable by the scraper alone, by NetworkPolicy)."""
    authorization = None
    if token_secret is not None:
        authorization = monitoring.ServiceMonitorSpecEndpointsAuthorization(
            type="Bearer",
            credentials=monitoring.ServiceMonitorSpecEndpointsAuthorizationCredentials(
                name=token_secret, key=METRICS_TOKEN_FILE
            ),
        )
    spec = monitoring.ServiceMonitorSpec(
        selector=monitoring.ServiceMonitorSpecSelector(match_labels=names.select(name)),
        namespace_selector=monitoring.ServiceMonitorSpecNamespaceSelector(match_names=[namespace]),
        endpoints=[
            monitoring.ServiceMonitorSpecEndpoints(
                port=HTTP_PORT_NAME,
                path=METRICS_PATH,
                interval=SCRAPE_INTERVAL,
                authorization=authorization,
            )
        ],
    )
    monitoring.ServiceMonitor(scope, "monitor", metadata=meta.api(name), spec=spec)
