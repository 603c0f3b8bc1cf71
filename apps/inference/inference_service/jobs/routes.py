"""The jobs API: submit (validated now, run later by a worker) and status.

- `POST /v2/models/{name}[/versions/{v}]/jobs`: the V2 infer body (JSON or the binary extension). It is
  validated against the model's signature here, so bad input is a 400 now, not a failed job later; binary
  outputs are refused (a job's result is JSON). 202 `{"id", "status": "queued", ...}` with
  `Location: /v2/jobs/<id>`. With `Idempotency-Key`, the same key and body give the same job (202 again,
  `Idempotent-Replayed: true`, with the earlier job's status now); the same key with another body is a 422.
- `GET /v2/jobs/{id}`: `{"id", "status", "model_name", "model_version", "attempts", "created", ...}`;
  `error` once failed, `result` (the V2 infer response) once done. A job is visible to the caller that
  submitted it only (another caller gets the same 404 as for an unknown id).
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from redis.exceptions import RedisError

from inference_service.errors import BadRequest, InferenceError, NotFound
from inference_service.jobs.store import IdempotencyConflict, JobStore
from inference_service.logs import REQUEST_ID
from inference_service.protocol import check_response_size, parse_v2
from inference_service.quotas import Quotas, owner_of
from inference_service.responses import json_response, read_body
from inference_service.rest.common import state_of
from inference_service.rest.inference import BINARY_HEADER

router = APIRouter(tags=["jobs"])

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_STORE_DOWN = "the job store is unreachable; retry shortly"


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.jobs
    return store


def _auth(request: Request) -> bool:
    return bool(request.app.state.quota_auth)


async def _submit(request: Request, model_name: str, model_version: str | None) -> Response:
    state = state_of(request)
    try:
        runtime = state.runtime(model_name, model_version)
        limit = min(state.settings.max_body_bytes, state.settings.jobs_max_request_bytes)
        body = await read_body(request.receive, limit)
        binary = request.headers.get(BINARY_HEADER.decode())
        parsed = parse_v2(runtime.model, body, binary)
        check_response_size(
            runtime.model, len(parsed.rows), parsed.outputs, state.settings.jobs_max_result_bytes
        )
        if parsed.outputs.binary:
            raise BadRequest(
                "a job's result is JSON: binary outputs (`binary_data`, `binary_data_output`) are not "
                "supported for jobs; use the infer route for them"
            )
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise BadRequest("Idempotency-Key must be 1-255 visible ASCII characters")
    except InferenceError as exc:
        return json_response({"error": exc.message}, exc.status)
    owner = owner_of(request.scope, _auth(request))
    quotas: Quotas | None = request.app.state.quotas
    if quotas is not None:
        decision = await quotas.admit(owner, len(parsed.rows))
        if not decision.admitted:
            headers = {"Retry-After": str(decision.retry_after)}
            return json_response({"error": decision.message}, decision.status, headers=headers)
    try:
        submitted = await _store(request).submit(
            model=runtime.name,
            version=runtime.version,
            binary=binary,
            body=body,
            owner=owner,
            idempotency_key=idempotency_key,
            request_id=REQUEST_ID.get(),
        )
    except IdempotencyConflict as exc:
        return json_response(
            {"error": f"Idempotency-Key was already used for job {exc} with another body; use a new key"}, 422
        )
    except (RedisError, OSError):
        return json_response({"error": _STORE_DOWN}, 503, headers={"Retry-After": "1"})
    headers = {"Location": f"/v2/jobs/{submitted.job_id}"}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    status = "queued"
    if not submitted.created:  # the earlier job's status now (it may have run already)
        with contextlib.suppress(RedisError, OSError):
            found = await _store(request).status(submitted.job_id)
            status = found[0]["status"] if found is not None else "expired"
    content = {
        "id": submitted.job_id,
        "status": status,
        "model_name": runtime.name,
        "model_version": runtime.version,
    }
    return json_response(content, 202, headers=headers)


@router.post("/v2/models/{model_name}/jobs", status_code=202, summary="Submit an inference job")
async def submit(request: Request, model_name: str) -> Response:
    return await _submit(request, model_name, None)


@router.post(
    "/v2/models/{model_name}/versions/{model_version}/jobs",
    status_code=202,
    summary="Submit an inference job to a given version",
)
async def submit_version(request: Request, model_name: str, model_version: str) -> Response:
    return await _submit(request, model_name, model_version)


@router.get("/v2/jobs/{job_id}", summary="A job's status; its V2 result once done")
async def job_status(request: Request, job_id: str) -> Response:
    unknown = NotFound(f"no job '{job_id}' (unknown, not yours, or its result expired)")
    if not _JOB_ID.match(job_id):
        return json_response({"error": unknown.message}, 404)
    try:
        found = await _store(request).status(job_id)
    except (RedisError, OSError):
        return json_response({"error": _STORE_DOWN}, 503, headers={"Retry-After": "1"})
    if found is None or found[0].get("owner") != owner_of(request.scope, _auth(request)):
        return json_response({"error": unknown.message}, 404)
    fields, result = found
    content: dict[str, Any] = {
        "id": job_id,
        "status": fields["status"],
        "model_name": fields.get("model"),
        "model_version": fields.get("version"),
        "attempts": int(fields.get("attempts", "0")),
    }
    for name in ("created", "started", "finished"):
        if name in fields:
            content[name] = float(fields[name])
    if "error" in fields:
        content["error"] = fields["error"]
    if fields.get("request_id"):
        content["request_id"] = fields["request_id"]  # the request that submitted it
    if result is not None and fields["status"] == "done":
        content["result"] = orjson.Fragment(result)
    return json_response(content)
