"""The inference routes, served straight from ASGI.

`POST /v2/models/{model_name}[/versions/{model_version}]/infer` and `POST /v1/models/{model_name}:predict`
are what the service exists for, and on a small CPU the framework around a request costs more than the
model. So the request middleware hands these to `InferenceHandler` directly, without the router, Request
and Response objects or exception middleware; the router keeps the same routes (for 405s and the OpenAPI
document) with this handler as their endpoint, so both ways in behave the same.

A repeated identical request (same route kind, binary-header value and body) is answered from the model's
response cache by a hash of the raw body, before any parsing: the response bytes were made once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from inference_service.cache import CachedResponse, ResponseCache
from inference_service.decoding import InvalidJson
from inference_service.engine import ModelRuntime
from inference_service.errors import BadRequest, InferenceError, PayloadTooLarge
from inference_service.protocol import check_response_size, encode_v1, encode_v2, parse_v1, parse_v2
from inference_service.state import ServiceState

log = logging.getLogger("inference.hotpath")

V2_INFER = "/v2/models/{model_name}/infer"
V2_VERSION_INFER = "/v2/models/{model_name}/versions/{model_version}/infer"
V1_PREDICT = "/v1/models/{model_name}:predict"
BINARY_HEADER = b"inference-header-content-length"
#: Bodies larger than this are parsed and answered off the event loop thread (see InferenceHandler._compute).
LARGE_BODY_BYTES = 256 * 1024
_JSON = b"application/json"
_BINARY = b"application/octet-stream"


class Target:
    """Which inference route a path is: kind (b"v1" / b"v2"), route template, model name and version."""

    __slots__ = ("kind", "model", "template", "version")

    def __init__(self, kind: bytes, template: str, model: str, version: str | None) -> None:
        self.kind = kind
        self.template = template
        self.model = model
        self.version = version


def match(path: str) -> Target | None:
    """The inference route of a request path, matched as the router would (`{param}`: one segment)."""
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        rest = path[11:-6]
        if rest and "/" not in rest:
            return Target(b"v2", V2_INFER, rest, None)
        name, sep, version = rest.partition("/versions/")
        if sep and name and version and "/" not in name and "/" not in version:
            return Target(b"v2", V2_VERSION_INFER, name, version)
        return None
    if path.startswith("/v1/models/") and path.endswith(":predict"):
        name = path[11:-8]
        if name and "/" not in name:
            return Target(b"v1", V1_PREDICT, name, None)
    return None


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing more than `limit` bytes even without (or with a lying) length."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(status: int, message: str) -> CachedResponse:
    body = orjson.dumps({"error": message})
    headers = ((b"content-type", _JSON), (b"content-length", str(len(body)).encode()))
    return CachedResponse(body=body, headers=headers, rows=0)


async def send_response(
    send: Send, status: int, response: CachedResponse, extra: list[tuple[bytes, bytes]]
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [*response.headers, *extra]})
    await send({"type": "http.response.body", "body": response.body})


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
            headers=((b"content-type", _JSON), (b"content-length", b"%d" % len(content))),
            rows=rows,
        )


class InferenceEndpoint:
    """The same handler as a router endpoint (an ASGI app) for requests that reach the router; the app
    keeps its handler in `app.state.inference_handler`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = match(scope["path"])
        assert target is not None  # the route's own template matched
        handler: InferenceHandler = scope["app"].state.inference_handler
        binary = next((v for k, v in scope["headers"] if k == BINARY_HEADER), None)
        await handler(scope, receive, send, target, binary, [])
