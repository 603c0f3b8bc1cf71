"""Liveness and readiness (open to probes, no API key)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from inference_service.responses import json_response
from inference_service.rest.common import state_of

router = APIRouter(tags=["health"])


@router.get("/v2/health/live", summary="Server liveness (200 live, 503 when model loading failed)")
async def live(request: Request) -> Response:
    ok = not state_of(request).load_failed
    return json_response({"live": ok}, 200 if ok else 503)


@router.get("/v2/health/ready", summary="Server readiness (200 once every model is loaded and warmed)")
async def ready(request: Request) -> Response:
    ok = state_of(request).ready
    return json_response({"ready": ok}, 200 if ok else 503)
