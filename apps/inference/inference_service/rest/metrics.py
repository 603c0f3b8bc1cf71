"""Prometheus exposition (open to scrapers, no API key)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from inference_service.rest.common import state_of

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    state = state_of(request)
    circuit = state.redis is not None and state.redis.breaker.state != "closed"
    state.metrics.redis_circuit_open.set(1 if circuit else 0)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
