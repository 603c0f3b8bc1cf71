"""The bare gRPC servicer on a maintained ASGI gRPC library: connect-python (`connectrpc`) in pyvoy (Envoy).

    BARE_MODEL=MODEL.onnx BARE_NAME=NAME pyvoy --port PORT --worker-threads 1 bare_connect_server:app

The same ModelInfer work as bench/bare_grpc_server.py (its Servicer.infer), served by connect-python's ASGI
application, which speaks the gRPC protocol (and Connect's and gRPC-Web's) over any ASGI server, with the
google.protobuf codecs (the service's generated messages) and no compression: what a maintained library,
not hand-written framing (bench/bare_asgi_server.py's grpc_app), costs on the same Envoy. The endpoints are
written out here as connect-python's generator would write them for these two methods. inference_bench's
start_pyvoy runs it in build/asgi-venv, where ASGI_PINS installs connectrpc.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from bare_grpc_server import Servicer
from connectrpc.compat import google_protobuf_codecs
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.server import ConnectASGIApplication, Endpoint

from inference_service.grpc import inference_pb2 as pb

SERVICE = "inference.GRPCInferenceService"
_servicer = Servicer(os.environ["BARE_MODEL"], os.environ["BARE_NAME"])


class Service:
    async def model_infer(self, request: Any, ctx: Any) -> Any:
        return _servicer.infer(request)

    async def server_ready(self, request: Any, ctx: Any) -> Any:  # the benches' wait
        return pb.ServerReadyResponse(ready=True)


def _unary(name: str, request: Any, reply: Any, function: Any) -> Any:
    info = MethodInfo(
        name=name,
        service_name=SERVICE,
        input=request,
        output=reply,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=StreamType.UNARY,
    )
    return Endpoint.unary(method=info, function=function)


def _endpoints(service: Service) -> Mapping[str, Any]:
    return {
        f"/{SERVICE}/ModelInfer": _unary(
            "ModelInfer", pb.ModelInferRequest, pb.ModelInferResponse, service.model_infer
        ),
        f"/{SERVICE}/ServerReady": _unary(
            "ServerReady", pb.ServerReadyRequest, pb.ServerReadyResponse, service.server_ready
        ),
    }


class Application(ConnectASGIApplication[Service]):  # type: ignore[misc]  # untyped: not in .venv
    @property
    def path(self) -> str:
        return f"/{SERVICE}"


app = Application(service=Service(), endpoints=_endpoints, codecs=google_protobuf_codecs(), compressions=[])
