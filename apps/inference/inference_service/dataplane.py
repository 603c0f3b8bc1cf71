"""The dataplane: one inference request, from the bytes an endpoint read to the bytes it sends, whichever
endpoint it came in by (KServe's `protocol/dataplane.py` under its REST and gRPC endpoints).

decode (inference_service.protocol, helper processes for large JSON) -> authorize (the identity gate, run by
the endpoints' front before any body is read; the caller's quota, `quotas.QuotaLimitedHandler`) -> cache
(whole responses here, rows in the model's runtime) -> batch and run (inference_service.engine: single-flight,
dynamic batcher, onnxruntime) -> encode.

`POST /v2/models/{model_name}[/versions/{model_version}]/infer` and `POST /v1/models/{model_name}:predict`
are what the service exists for, and on a small CPU the framework around a request costs more than the
model. So the REST front (inference_service.rest.front) hands these to `InferenceHandler` directly, without
the router, Request and Response objects or exception middleware; the router keeps the same routes (for
405s and the OpenAPI document) with this handler as their endpoint (inference_service.rest.inference), so
both ways in behave the same.

A repeated identical request (same route kind, binary-header value and body) is answered from the model's
response cache by a hash of the raw body, before any parsing: the response bytes were made once.
The server and model metadata documents both endpoints answer are here too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.types import Receive, Scope, Send

from inference_service import __version__
from inference_service.cache import ResponseCache
from inference_service.decoding import InvalidJson
from inference_service.engine import ModelRuntime
from inference_service.errors import BadRequest, InferenceError, PayloadTooLarge
from inference_service.protocol import check_response_size, encode_v1, encode_v2, parse_v1, parse_v2
from inference_service.repository import ModelEntry
from inference_service.responses import JSON, CachedResponse, error_response, read_body, send_response
from inference_service.state import ServiceState

log = logging.getLogger("inference.hotpath")

#: Bodies larger than this are parsed and answered off the event loop thread (see InferenceHandler._compute).
LARGE_BODY_BYTES = 256 * 1024
_BINARY = b"application/octet-stream"

SERVER_NAME = "mlplatform-inference"
EXTENSIONS = ["binary_tensor_data"]


def server_document() -> dict[str, Any]:
    """The server's V2 metadata (`GET /v2`; the gRPC ServerMetadata answers the same)."""
    return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}


def metadata_document(entry: ModelEntry) -> dict[str, Any]:
    """A model's V2 metadata (the gRPC ModelMetadata answers the same, without `parameters`)."""
    meta = entry.metadata
    return {
        "name": entry.name,
        "versions": [entry.version],
        "platform": meta.platform,
        "inputs": [i.model_dump() for i in meta.inputs],
        "outputs": [o.model_dump() for o in meta.outputs],
        "parameters": {"description": meta.description, "kind": meta.kind},
    }


class Target:
    """Which inference route a path is: kind (b"v1" / b"v2"), route template, model name and version."""

    __slots__ = ("kind", "model", "template", "version")

    def __init__(self, kind: bytes, template: str, model: str, version: str | None) -> None:
        self.kind = kind
        self.template = template
        self.model = model
        self.version = version


class InferenceHandler:
    """Serves one inference request; returns the HTTP status it sent."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state
        settings = state.settings
        self.limit = settings.max_body_bytes
        self.response_limit = settings.max_response_bytes
        # Whole responses are part of the local tier: off with it. One cache per model, made on first use.
        self._cache_entries = settings.local_cache_entries
        self._cache_bytes = settings.response_cache_bytes if settings.local_cache_entries > 0 else 0
        self._responses: dict[str, ResponseCache] = {}

    def responses(self, runtime: ModelRuntime) -> ResponseCache | None:
        if self._cache_bytes <= 0:
            return None
        cache = self._responses.get(runtime.name)
        if cache is None:
            cache = self._responses[runtime.name] = ResponseCache(
                max_entries=self._cache_entries, max_bytes=self._cache_bytes
            )
        return cache

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        target: Target,
        binary_header: bytes | None,
        extra_headers: list[tuple[bytes, bytes]],
        *,
        body: bytes | None = None,
    ) -> int:
        """`body`: the request body when a caller has already read it (the quota check counts its rows)."""
        try:
            runtime = self.state.runtime(target.model, target.version)
            if body is None:
                body = await read_body(receive, self.limit)
            responses = self.responses(runtime)
            if responses is None:
                response = await self._compute(runtime, target, body, binary_header)
            else:
                if len(body) > LARGE_BODY_BYTES:  # megabytes to hash: on a thread (hashlib drops the GIL)
                    key = await asyncio.to_thread(ResponseCache.key, target.kind, binary_header, body)
                else:
                    key = ResponseCache.key(target.kind, binary_header, body)
                cached = responses.get(key)
                if cached is not None:
                    runtime.count_response_hit(cached.rows)
                    response = cached
                else:
                    response = await self._compute(runtime, target, body, binary_header)
                    responses.put(key, response)
            status = 200
        except InferenceError as exc:
            status, response = exc.status, error_response(exc.status, exc.message)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            status, response = 500, error_response(500, "internal error; see the server log")
        await send_response(send, status, response, extra_headers)
        return status

    async def _decode(self, body: bytes) -> Any:
        try:
            return await self.state.decoder.decode(body)
        except InvalidJson as exc:
            raise BadRequest(str(exc)) from None

    def _check_size(self, content: bytes) -> None:
        """An open output dimension can make a response larger than its bound foresaw: checked again."""
        if len(content) > self.response_limit:
            message = f"the response of {len(content)} bytes exceeds the limit of {self.response_limit}"
            raise PayloadTooLarge(message)

    async def _compute(
        self, runtime: ModelRuntime, target: Target, body: bytes, binary_header: bytes | None
    ) -> CachedResponse:
        model = runtime.model
        # A large JSON body is decoded in a helper process (inference_service.decoding), then validated and
        # its response encoded on a thread, where their Python loops give the event loop the GIL every
        # switch interval; inference runs in steps of LOOP_STEP_ROWS rows (inference_service.engine).
        large = len(body) > LARGE_BODY_BYTES
        decoded = await self._decode(body) if large and binary_header is None else None
        if target.kind == b"v2":
            header = binary_header.decode("latin-1") if binary_header else None
            if large:
                parsed = await asyncio.to_thread(parse_v2, model, body, header, decoded)
            else:
                parsed = parse_v2(model, body, header)
            rows = len(parsed.rows)
            check_response_size(model, rows, parsed.outputs, self.response_limit)
            results = await runtime.infer(parsed.rows)
            if large:
                content, headers = await asyncio.to_thread(encode_v2, model, parsed, results)
            else:
                content, headers = encode_v2(model, parsed, results)
            self._check_size(content)
            if headers:  # binary outputs: the JSON header's length
                head = (
                    (b"content-type", _BINARY),
                    (b"content-length", b"%d" % len(content)),
                    *[(k.lower().encode(), v.encode()) for k, v in headers.items()],
                )
                return CachedResponse(body=content, headers=head, rows=rows)
        else:
            if large:
                instances = await asyncio.to_thread(parse_v1, model, body, decoded)
            else:
                instances = parse_v1(model, body)
            rows = len(instances)
            check_response_size(model, rows, None, self.response_limit)
            predictions = await runtime.infer(instances)
            if large:
                content = await asyncio.to_thread(encode_v1, model, predictions)
            else:
                content = encode_v1(model, predictions)
            self._check_size(content)
        return CachedResponse(
            body=content,
            headers=((b"content-type", JSON), (b"content-length", b"%d" % len(content))),
            rows=rows,
        )
