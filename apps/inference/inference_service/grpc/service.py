"""`inference.GRPCInferenceService`: each RPC through the REST path's own pieces.

Every call is the request it stands for on REST (`POST /v2/models/{m}[/versions/{v}]/infer`, `GET
/v2/models/{m}` ...): the request middleware's in-flight limit and counter and request ids, the identity
gate (API keys and OIDC tokens from the `authorization` / `x-api-key` metadata, the access policy, one audit
line with the RPC named), the quota, the model's runtime (its caches, single-flight and dynamic batcher: a
gRPC and a REST request for the same rows share cache entries and batches), the metrics (protocol="grpc")
and the access log. Errors are the REST path's InferenceErrors with their one-line messages, sent as the
matching status code (CODES).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import orjson
from google.protobuf.message import Message

from inference_service.dataplane import LARGE_BODY_BYTES, InferenceHandler, metadata_document, server_document
from inference_service.errors import InferenceError, PayloadTooLarge, TooManyRequests, Unavailable
from inference_service.grpc import inference_pb2 as pb
from inference_service.grpc import inference_pb2_grpc as pb_grpc
from inference_service.grpc import messages
from inference_service.logs import REQUEST_ID, iso_time
from inference_service.protocol import check_response_size, parse_v2_document
from inference_service.quotas import QuotaLimitedHandler, owner_of
from inference_service.rest.front import UNKNOWN_MODEL, RequestMiddleware
from inference_service.security import OPEN_PATHS
from inference_service.state import ServiceState

log = logging.getLogger("inference.grpc")

SERVICE = "inference.GRPCInferenceService"
#: The HTTP status of an InferenceError (or a refusal) -> the gRPC status code it is sent as.
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
_LIMIT_MESSAGE = "the server is at its connection or request limit; retry shortly"
ReplyT = TypeVar("ReplyT", bound=Message)


def _path(model: str, version: str, tail: str = "") -> str:
    """The REST path a model RPC stands for: what the access policy and the audit line are about."""
    base = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
    return base + tail


class Call:
    """One RPC as the REST path sees a request: a scope-like dict for the gate and the quota."""

    __slots__ = ("model", "request_id", "scope", "started", "status")

    def __init__(
        self, rpc: str, method: str, path: str, model: str, context: grpc.aio.ServicerContext
    ) -> None:
        self.started = time.perf_counter()
        headers = [
            (k.encode(), v.encode() if isinstance(v, str) else v)
            for k, v in context.invocation_metadata() or ()
        ]
        peer = context.peer() or ""
        self.scope: dict[str, Any] = {
            "type": "grpc",
            "rpc": rpc,
            "method": method,
            "path": path,
            "headers": headers,
            "client": (peer.rpartition(":")[0].removeprefix("ipv4:").removeprefix("ipv6:"), 0),
        }
        self.model = model
        self.status = 500
        self.request_id = b""


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, *, state: ServiceState, handler: InferenceHandler, front: RequestMiddleware) -> None:
        self.state = state
        self.front = front
        self.quotas = handler.quotas if isinstance(handler, QuotaLimitedHandler) else None
        self.quota_auth = handler.auth if isinstance(handler, QuotaLimitedHandler) else False
        self.response_limit = state.settings.max_response_bytes

    # The RPCs

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        async def run(call: Call) -> pb.ServerLiveResponse:
            return pb.ServerLiveResponse(live=not self.state.load_failed)

        return await self._serve(
            context, "ServerLive", "GET", "/v2/health/live", "", run, pb.ServerLiveResponse
        )

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        async def run(call: Call) -> pb.ServerReadyResponse:
            return pb.ServerReadyResponse(ready=self.state.ready)

        return await self._serve(
            context, "ServerReady", "GET", "/v2/health/ready", "", run, pb.ServerReadyResponse
        )

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        async def run(call: Call) -> pb.ServerMetadataResponse:
            return pb.ServerMetadataResponse(**server_document())

        return await self._serve(context, "ServerMetadata", "GET", "/v2", "", run, pb.ServerMetadataResponse)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        async def run(call: Call) -> pb.ModelReadyResponse:
            _, ok = self.state.model_ready(request.name, request.version or None)
            return pb.ModelReadyResponse(ready=ok)

        path = _path(request.name, request.version, "/ready")
        return await self._serve(context, "ModelReady", "GET", path, request.name, run, pb.ModelReadyResponse)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        async def run(call: Call) -> pb.ModelMetadataResponse:
            doc = metadata_document(self.state.entry(request.name, request.version or None))
            tensors = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=doc["name"],
                versions=doc["versions"],
                platform=doc["platform"],
                inputs=[
                    tensors(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in doc["inputs"]
                ],
                outputs=[
                    tensors(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in doc["outputs"]
                ],
            )

        path = _path(request.name, request.version)
        return await self._serve(
            context, "ModelMetadata", "GET", path, request.name, run, pb.ModelMetadataResponse
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        async def run(call: Call) -> pb.ModelInferResponse:
            if self.quotas is not None:
                decision = await self.quotas.admit(
                    owner_of(call.scope, self.quota_auth), messages.rows_asked(request)
                )
                if not decision.admitted:
                    context.set_trailing_metadata((("retry-after", str(decision.retry_after)),))
                    raise (TooManyRequests if decision.status == 429 else Unavailable)(decision.message)
            runtime = self.state.runtime(request.model_name, request.model_version or None)
            model = runtime.model
            large = request.ByteSize() > LARGE_BODY_BYTES  # converted and checked on a thread, as REST does

            def parse() -> Any:
                doc, tail = messages.document(request)
                return parse_v2_document(model, doc, memoryview(tail))

            parsed = await asyncio.to_thread(parse) if large else parse()
            check_response_size(model, len(parsed.rows), parsed.outputs, self.response_limit)
            results = await runtime.infer(parsed.rows)
            if large:
                reply = await asyncio.to_thread(messages.response, model, parsed, results)
            else:
                reply = messages.response(model, parsed, results)
            size = reply.ByteSize()
            if size > self.response_limit:
                raise PayloadTooLarge(
                    f"the response of {size} bytes exceeds the limit of {self.response_limit}"
                )
            return reply

        path = _path(request.model_name, request.model_version, "/infer")
        return await self._serve(
            context, "ModelInfer", "POST", path, request.model_name, run, pb.ModelInferResponse
        )

    # What every RPC goes through

    async def _serve(
        self,
        context: grpc.aio.ServicerContext,
        rpc: str,
        method: str,
        path: str,
        model: str,
        run: Callable[[Call], Awaitable[ReplyT]],
        empty: Callable[[], ReplyT],
    ) -> ReplyT:
        front = self.front
        call = Call(f"/{SERVICE}/{rpc}", method, path, model, context)
        presented = next((v for k, v in call.scope["headers"] if k == b"x-request-id"), None)
        call.request_id = front.request_id(presented)
        context.set_trailing_metadata((("x-request-id", call.request_id.decode()),))
        token = REQUEST_ID.set(call.request_id.decode())
        front.active += 1
        message = ""
        reply: ReplyT | None = None
        try:
            if path not in OPEN_PATHS and front.active > front.max_in_flight:
                call.status, message = 503, _LIMIT_MESSAGE
                front.note_refusal(call.scope)
            elif (
                front.api_keys is not None
                and path not in front.open_paths
                and (refusal := await front.api_keys.refuse(call.scope, call.request_id)) is not None
            ):
                call.status, message = refusal.status, refusal.message
            else:
                try:
                    reply = await run(call)
                    call.status = 200
                except InferenceError as exc:
                    call.status, message = exc.status, exc.message
                except Exception:
                    log.exception("unhandled error on %s", call.scope["rpc"])
                    call.status, message = 500, "internal error; see the server log"
        finally:
            front.active -= 1
            REQUEST_ID.reset(token)
            if front.api_keys is not None:
                front.api_keys.audited(call.scope, call.status)
            self._record(call)
        if reply is None:
            context.set_code(CODES.get(call.status, grpc.StatusCode.INTERNAL))
            context.set_details(message)
            return empty()
        return reply

    def _record(self, call: Call) -> None:
        """The request's latency metric and access log line, as the request middleware writes them."""
        front = self.front
        elapsed = time.perf_counter() - call.started
        rpc: str = call.scope["rpc"]
        label = call.model if not call.model or call.model in front.served else UNKNOWN_MODEL
        front.metrics.request_latency.labels(rpc, label, f"{call.status // 100}xx", "grpc").observe(elapsed)
        if front.access_log is None:
            return
        code = grpc.StatusCode.OK if call.status == 200 else CODES.get(call.status, grpc.StatusCode.INTERNAL)
        line: dict[str, Any] = {
            "time": iso_time(time.time()),
            "level": "info",
            "logger": "access",
            "request_id": call.request_id.decode(),
            "protocol": "grpc",
            "method": "POST",
            "path": rpc,
            "route": rpc,
            "status": call.status,
            "grpc_status": code.name,
            "duration_ms": round(elapsed * 1000, 3),
            "client": call.scope["client"][0],
        }
        if call.model:
            line["model"] = call.model
        front.access_log.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
