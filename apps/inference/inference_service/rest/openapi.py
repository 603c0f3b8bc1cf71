"""OpenAPI document with per-model request and response schemas derived from each model's signature.

The generic routes (`/v2/models/{model_name}/infer`, ...) serve every model; for each live model this adds
concrete paths (`/v2/models/breast-cancer/infer`, its `/versions/1/` twin and
`/v1/models/breast-cancer:predict`) whose schemas name the model's inputs and outputs with their
datatypes and shapes.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from inference_service import __version__
from inference_service.repository import ModelEntry
from inference_service.repository_format import TensorSpec
from inference_service.security import METRICS_PATH, OPEN_PATHS

_JSON_TYPES = {"BOOL": "boolean", "BYTES": "string", "FP16": "number", "FP32": "number", "FP64": "number"}


def _component(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name)


def _tensor_schema(spec: TensorSpec, *, with_data: bool) -> dict[str, Any]:
    shape_text = (
        "["
        + ", ".join("N" if i == 0 else ("any" if d < 0 else str(d)) for i, d in enumerate(spec.shape))
        + "]"
    )
    properties: dict[str, Any] = {
        "name": {"type": "string", "enum": [spec.name]},
        "datatype": {"type": "string", "enum": [spec.datatype]},
        "shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "minItems": len(spec.shape),
            "maxItems": len(spec.shape),
            "description": f"{shape_text}; the first dimension is the batch",
        },
        "parameters": {"type": "object", "description": 'e.g. {"binary_data_size": n} (binary extension)'},
    }
    if with_data:
        properties["data"] = {
            "type": "array",
            "items": {"type": _JSON_TYPES.get(spec.datatype, "integer")},
            "description": f"row-major {spec.datatype} values (flat or nested)",
        }
    return {"type": "object", "required": ["name", "datatype", "shape"], "properties": properties}


def _example(entry: ModelEntry) -> dict[str, Any]:
    inputs = []
    for spec in entry.metadata.inputs:
        shape = [1] + [d if d > 0 else 1 for d in spec.shape[1:]]
        count = 1
        for d in shape:
            count *= d
        value: Any = (
            "The quick brown fox." if spec.datatype == "BYTES" else 0.0 if "FP" in spec.datatype else 0
        )
        inputs.append({"name": spec.name, "datatype": spec.datatype, "shape": shape, "data": [value] * count})
    return {"inputs": inputs}


def _model_paths(entry: ModelEntry, schemas: dict[str, Any]) -> dict[str, Any]:
    meta = entry.metadata
    base = _component(f"{entry.name}_v{entry.version}")
    schemas[f"{base}_InferenceRequest"] = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object", "description": 'e.g. {"binary_data_output": true}'},
            "inputs": {
                "type": "array",
                "minItems": len(meta.inputs),
                "maxItems": len(meta.inputs),
                "items": {"anyOf": [_tensor_schema(s, with_data=True) for s in meta.inputs]},
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "enum": [o.name for o in meta.outputs]},
                        "parameters": {"type": "object"},
                    },
                },
            },
        },
        "example": _example(entry),
    }
    schemas[f"{base}_InferenceResponse"] = {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string", "enum": [entry.name]},
            "model_version": {"type": "string", "enum": [entry.version]},
            "id": {"type": "string"},
            "outputs": {
                "type": "array",
                "items": {"anyOf": [_tensor_schema(s, with_data=True) for s in meta.outputs]},
            },
        },
    }
    first = meta.inputs[0]
    instance: dict[str, Any] = (
        {"type": "string"}
        if first.datatype == "BYTES"
        else {"type": "array", "items": {"type": _JSON_TYPES.get(first.datatype, "integer")}}
    )
    schemas[f"{base}_PredictRequest"] = {
        "type": "object",
        "required": ["instances"],
        "properties": {"instances": {"type": "array", "minItems": 1, "items": instance}},
    }
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    errors = {
        str(code): {"description": text, "content": error_body}
        for code, text in (
            (400, "invalid input"),
            (401, "missing or invalid API key or OIDC token"),
            (403, "the caller is not granted this action on this model (access policy)"),
            (404, "unknown model or version"),
            (413, "body too large"),
            (503, "model still loading"),
        )
    }

    def operation(summary: str, request: str, response: str | None) -> dict[str, Any]:
        ok: dict[str, Any] = {"description": "inference result"}
        if response:
            ok["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{response}"}}}
        return {
            "post": {
                "tags": [f"model: {entry.name}"],
                "summary": summary,
                "description": meta.description,
                "operationId": _component(f"{summary}_{entry.name}_{entry.version}"),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}},
                },
                "responses": {"200": ok, **errors},
            }
        }

    return {
        f"/v2/models/{entry.name}/infer": operation(
            "infer", f"{base}_InferenceRequest", f"{base}_InferenceResponse"
        ),
        f"/v2/models/{entry.name}/versions/{entry.version}/infer": operation(
            "infer version", f"{base}_InferenceRequest", f"{base}_InferenceResponse"
        ),
        f"/v1/models/{entry.name}:predict": operation("predict", f"{base}_PredictRequest", None),
    }


def build_openapi(app: FastAPI, entries: list[ModelEntry], *, auth: bool) -> dict[str, Any]:
    doc = get_openapi(
        title="Inference service",
        version=__version__,
        description="Open Inference Protocol (V2) and KServe V1 over ONNX models; per-model schemas below.",
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
    paths = doc.setdefault("paths", {})
    generic = {
        "type": "object",
        "required": ["inputs"],
        "description": "a V2 inference request for the model",
    }
    for path, summary in (
        ("/v2/models/{model_name}/infer", "Inference (live version)"),
        ("/v2/models/{model_name}/versions/{model_version}/infer", "Inference (given version)"),
        ("/v1/models/{model_name}:predict", "Prediction (KServe V1)"),
    ):
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in ("model_name", "model_version")
            if "{" + name + "}" in path
        ]
        paths[path] = {
            "post": {
                "tags": ["v1" if path.startswith("/v1") else "v2"],
                "summary": summary,
                "description": "Any served model; see the per-model paths for the exact request schema.",
                "operationId": _component(summary.lower()),
                "parameters": parameters,
                "requestBody": {"required": True, "content": {"application/json": {"schema": generic}}},
                "responses": {"200": {"description": "inference result"}},
            }
        }
    for entry in entries:
        paths.update(_model_paths(entry, schemas))
    if auth:
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "API key or OIDC token (JWT)"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "metricsToken": {"type": "http", "scheme": "bearer", "description": "the scraper's token"},
        }
        for path, operations in paths.items():
            if path not in OPEN_PATHS:
                scheme: list[dict[str, list[str]]] = (
                    [{"metricsToken": []}] if path == METRICS_PATH else [{"bearer": []}, {"apiKey": []}]
                )
                for op in operations.values():
                    op["security"] = scheme
    return doc
