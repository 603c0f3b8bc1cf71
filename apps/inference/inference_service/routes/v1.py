"""KServe V1: `POST /v1/models/{name}:predict` with `{"instances": [...]}`, and model status."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from inference_service.protocol import encode_v1, parse_v1
from inference_service.routes.common import HotRoute, json_response, read_body, state_of

router = APIRouter(tags=["v1"])


@router.get("/v1/models/{model_name}", summary="Model status (KServe V1)")
async def model_status(request: Request, model_name: str) -> Response:
    state = state_of(request)
    entry = state.entry(model_name, None)
    return json_response({"name": entry.name, "ready": entry.name in state.runtimes})


async def predict(request: Request) -> Response:
    state = state_of(request)
    runtime = state.runtime(request.path_params["model_name"], None)
    body = await read_body(request, state.settings.max_body_bytes)
    rows = parse_v1(runtime.model, body)
    results = await runtime.infer(rows)
    return Response(encode_v1(runtime.model, results), media_type="application/json")


HOT_ROUTES = [HotRoute("/v1/models/{model_name}:predict", predict, methods=["POST"])]
