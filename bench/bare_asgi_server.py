"""The bare servers on other HTTP stacks: ASGI apps for pyvoy, which embeds Python in Envoy, and hypercorn.

    BARE_MODEL=MODEL.onnx BARE_NAME=NAME pyvoy --port PORT --worker-threads 1 bare_asgi_server:grpc_app

- `grpc_app`: the ModelInfer work of bench/bare_grpc_server.py (its Servicer.infer: typed FP32 contents in,
  typed contents out) as a plain ASGI app: the gRPC framing (a 5-byte length prefix, `grpc-status` in the
  HTTP/2 trailers) by hand, HTTP/2 by Envoy. pyvoy's ASGI server carries trailers, which gRPC needs
  (uvicorn has no HTTP/2; granian sends no trailers; hypercorn's HTTP/2 is pure Python). No auth, no
  validation, no compression, no error statuses: what an ASGI gRPC servicer can do at best here when Envoy
  (or hypercorn), not grpcio, speaks HTTP/2.
- `rest_app`: bench/bare_server.py's V2 JSON app, unchanged: what the same stack does for REST.
- `hybrid_app`: `grpc_app`, and from its lifespan `rest_app` on uvicorn (httptools) on BARE_REST_PORT, in the
  same process and on the same event loop (pyvoy's): gRPC by Envoy, REST by uvicorn, as a service could
  serve both.

The benches install pyvoy and hypercorn into a virtualenv of their own (build/asgi-venv) and run this module
there with .venv's packages on the path (inference_bench.asgi_env).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import uvicorn
from bare_grpc_server import Servicer
from bare_server import make_app, read_body

from inference_service.grpc import inference_pb2 as pb

_MODEL, _NAME = os.environ["BARE_MODEL"], os.environ["BARE_NAME"]
_servicer = Servicer(_MODEL, _NAME)
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/grpc")],
    "trailers": True,
}
_OK = {"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")], "more_trailers": False}

rest_app = make_app(_MODEL, _NAME)


async def grpc_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = await read_body(receive)
    if scope["path"].endswith("/ModelInfer"):
        reply = _servicer.infer(pb.ModelInferRequest.FromString(body[5:])).SerializeToString()
    else:  # ServerReady: the benches' wait
        reply = pb.ServerReadyResponse(ready=True).SerializeToString()
    await send(_START)
    await send({"type": "http.response.body", "body": b"\x00" + len(reply).to_bytes(4, "big") + reply})
    await send(_OK)


async def hybrid_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "lifespan":
        await grpc_app(scope, receive, send)
        return
    await receive()  # lifespan.startup
    config = uvicorn.Config(
        rest_app, host="127.0.0.1", port=int(os.environ["BARE_REST_PORT"]), loop="none", http="httptools",
        access_log=False, log_level="warning", lifespan="off", server_header=False, date_header=False,
    )  # fmt: skip
    server = uvicorn.Server(config)  # off the main thread: it leaves the signals to Envoy
    serving = asyncio.get_running_loop().create_task(server.serve())
    await send({"type": "lifespan.startup.complete"})
    await receive()  # lifespan.shutdown
    server.should_exit = True
    await serving
    await send({"type": "lifespan.shutdown.complete"})
