"""Open Inference Protocol (V2) endpoints, as KServe and Triton serve them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from inference_service.dataplane import metadata_document, server_document
from inference_service.responses import json_response
from inference_service.rest.common import HotRoute, state_of
from inference_service.rest.inference import V2_INFER, V2_VERSION_INFER, InferenceEndpoint

router = APIRouter(tags=["v2"])


@router.get("/v2", summary="Server metadata")
async def server_metadata() -> Response:
    return json_response(server_document())


def _metadata(request: Request, model_name: str, model_version: str | None) -> Response:
    return json_response(metadata_document(state_of(request).entry(model_name, model_version)))


@router.get("/v2/models/{model_name}", summary="Model metadata (live version)")
async def model_metadata(request: Request, model_name: str) -> Response:
    return _metadata(request, model_name, None)


@router.get("/v2/models/{model_name}/versions/{model_version}", summary="Model metadata (given version)")
async def model_version_metadata(request: Request, model_name: str, model_version: str) -> Response:
    return _metadata(request, model_name, model_version)


def _ready(request: Request, model_name: str, model_version: str | None) -> Response:
    entry, ok = state_of(request).model_ready(model_name, model_version)
    return json_response({"name": entry.name, "ready": ok}, 200 if ok else 503)


@router.get("/v2/models/{model_name}/ready", summary="Model readiness (200 ready, 503 loading)")
async def model_ready(request: Request, model_name: str) -> Response:
    return _ready(request, model_name, None)


@router.get("/v2/models/{model_name}/versions/{model_version}/ready", summary="Model version readiness")
async def model_version_ready(request: Request, model_name: str, model_version: str) -> Response:
    return _ready(request, model_name, model_version)


# The inference routes: the front serves them straight from ASGI (inference_service.rest.inference); here
# for 405s on other methods. The OpenAPI document describes them per model (inference_service.rest.openapi).
HOT_ROUTES = [
    HotRoute(V2_INFER, InferenceEndpoint(), methods=["POST"]),
    HotRoute(V2_VERSION_INFER, InferenceEndpoint(), methods=["POST"]),
]
