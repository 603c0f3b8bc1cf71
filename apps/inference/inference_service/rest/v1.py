"""KServe V1: `POST /v1/models/{name}:predict` with `{"instances": [...]}`, and model status."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from inference_service.responses import json_response
from inference_service.rest.common import HotRoute, state_of
from inference_service.rest.inference import V1_PREDICT, InferenceEndpoint

router = APIRouter(tags=["v1"])


@router.get("/v1/models", summary="The models served (KServe V1)")
async def list_models(request: Request) -> Response:
    return json_response({"models": sorted(state_of(request).entries)})


@router.get("/v1/models/{model_name}", summary="Model status (KServe V1)")
async def model_status(request: Request, model_name: str) -> Response:
    state = state_of(request)
    entry = state.entry(model_name, None)
    return json_response({"name": entry.name, "ready": entry.name in state.runtimes})


# Served by the front straight from ASGI (inference_service.rest.inference); here for 405s.
HOT_ROUTES = [HotRoute(V1_PREDICT, InferenceEndpoint(), methods=["POST"])]
