"""The FastAPI application factory: `uvicorn inference_service.app:create_app --factory`.

The one place the serving layers are composed: the REST endpoints (inference_service.rest: the front every
request enters, the routes) and the gRPC ones (inference_service.grpc, started in the lifespan) over one
dataplane (inference_service.dataplane.InferenceHandler), with its wrappers: the identity gate (run by the
front), the jobs API and the caller's quota (`serving_handler`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from inference_service import __version__
from inference_service.accesslog import AccessLog
from inference_service.dataplane import InferenceHandler
from inference_service.errors import InferenceError
from inference_service.identity.build import build_gate
from inference_service.identity.gate import Gate
from inference_service.jobs import routes as jobs_routes
from inference_service.jobs.store import JobStore, connect
from inference_service.logs import configure_logging
from inference_service.metrics import Metrics
from inference_service.quotas import QuotaLimitedHandler, Quotas
from inference_service.quotas import router as quota_router
from inference_service.repository import discover
from inference_service.responses import json_response
from inference_service.rest import health, v1, v2
from inference_service.rest import metrics as metrics_route
from inference_service.rest.front import RequestMiddleware
from inference_service.rest.openapi import build_openapi
from inference_service.security import DOC_PATHS, OPEN_PATHS
from inference_service.settings import Settings
from inference_service.state import ServiceState

log = logging.getLogger("inference.app")


class InferenceApp(FastAPI):
    """FastAPI, with every HTTP request entering through `front` (the request middleware: request id, API
    key, metrics, access log, and the inference routes served directly); everything else it hands on to
    FastAPI's own stack (router, exception handlers)."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is not None and scope["type"] == "http":
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def serving_handler(app: FastAPI, state: ServiceState) -> InferenceHandler:
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
    app.include_router(jobs_routes.router)
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
    if not s.quota_fail_open:  # ready only once the store answers (or the wait is over)
        state.startup_checks.append(lambda: quotas.wait_reachable(s.quota_store_startup_wait_seconds))
    return QuotaLimitedHandler(state, quotas, auth=s.auth_enabled)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Builds the app for the live models. Fails fast, with a clear message, on bad configuration."""
    settings = settings or Settings()
    configure_logging()
    entries = discover(settings.model_repository, settings.model_refs)
    api_keys: Gate | None = None  # API keys and OIDC tokens, the access policy, the audit trail
    if settings.auth_enabled:
        api_keys = build_gate(settings, {e.name: e.version for e in entries})
    metrics = Metrics()
    state = ServiceState(settings=settings, entries=entries, metrics=metrics)
    access_log = AccessLog(sys.stdout.buffer) if settings.access_log else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        grpc_server = None
        if settings.grpc_port:  # on this event loop, through the same gate, quotas, caches and batcher
            from inference_service.grpc.server import GrpcServer  # imports the generated stubs

            assert isinstance(app.front, RequestMiddleware)
            grpc_server = GrpcServer(state=state, handler=handler, front=app.front)
            await grpc_server.start()
        state.start_loading()
        try:
            yield
            if grpc_server is not None:
                await grpc_server.stop(settings.shutdown_drain_seconds)
            await state.shutdown()
        finally:
            if access_log is not None:
                access_log.flush()  # after the drain: every served request's line is written

    app = InferenceApp(
        title="Inference service",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        # The service's metrics are its own (Prometheus, /metrics); FastAPI's OpenTelemetry hooks would only
        # cost a check on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.inference = state
    app.state.inference_handler = handler = serving_handler(app, state)  # jobs API, quotas when configured
    app.router.routes[:0] = [*v2.HOT_ROUTES, *v1.HOT_ROUTES]  # first: matched before anything else
    app.include_router(health.router)
    app.include_router(v2.router)
    app.include_router(v1.router)
    app.include_router(metrics_route.router)

    @app.exception_handler(InferenceError)
    async def inference_error(_: Request, exc: InferenceError) -> Response:
        return json_response({"error": exc.message}, exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return json_response({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return json_response({"error": "internal error; see the server log"}, 500)

    schema: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not schema:
            schema.update(build_openapi(app, entries, auth=api_keys is not None))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.front = RequestMiddleware(
        partial(FastAPI.__call__, app),
        metrics=metrics,
        api_keys=api_keys,
        max_body_bytes=settings.max_body_bytes,
        access_log=access_log,
        served_models=[e.name for e in entries],
        inference=handler,
        metrics_token=settings.load_metrics_token(),
        max_connections=settings.max_connections,
        max_in_flight=settings.max_in_flight,
        open_paths=OPEN_PATHS | DOC_PATHS if settings.public_docs else OPEN_PATHS,
    )
    return app
