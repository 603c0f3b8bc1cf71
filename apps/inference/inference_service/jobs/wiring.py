"""What the service adds for jobs and quotas: one call from create_app, so app.py stays small."""

from __future__ import annotations

from fastapi import FastAPI

from inference_service.hotpath import InferenceHandler
from inference_service.jobs import routes
from inference_service.jobs.store import JobStore, connect
from inference_service.quotas import QuotaLimitedHandler, Quotas
from inference_service.quotas import router as quota_router
from inference_service.state import ServiceState


def install(app: FastAPI, state: ServiceState) -> InferenceHandler:
    """Adds the jobs and quota routes when a jobs Redis is configured; returns the inference handler (with
    quotas admitted first when a limit is set)."""
    s = state.settings
    app.state.quotas = None
    app.state.quota_auth = s.auth_enabled
    limited = s.quota_requests_per_minute > 0 or s.quota_rows_per_day > 0
    if not s.jobs_redis_url:
        if limited:
            raise ValueError(
                "INFERENCE_QUOTA_REQUESTS_PER_MINUTE / INFERENCE_QUOTA_ROWS_PER_DAY need "
                "INFERENCE_JOBS_REDIS_URL (the counters live in the persistent jobs Redis)"
            )
        app.include_router(quota_router)
        return InferenceHandler(state)
    client = connect(s.jobs_redis_url, s.jobs_redis_password(), s.jobs_redis_timeout_ms / 1000)
    app.state.jobs = JobStore(
        client,
        prefix=s.jobs_prefix,
        result_ttl_seconds=s.jobs_result_ttl_seconds,
        max_attempts=s.jobs_max_attempts,
    )
    app.include_router(routes.router)
    app.include_router(quota_router)
    if not limited:
        return InferenceHandler(state)
    app.state.quotas = quotas = Quotas(
        client,
        requests_per_minute=s.quota_requests_per_minute,
        rows_per_day=s.quota_rows_per_day,
        fail_open=s.quota_fail_open,
        registry=state.metrics.registry,
    )
    return QuotaLimitedHandler(state, quotas, auth=s.auth_enabled)
