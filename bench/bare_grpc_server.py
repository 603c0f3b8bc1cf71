"""The gRPC reference server for bench/inference_bench.py: a bare grpcio asyncio servicer with onnxruntime.

    python bench/bare_grpc_server.py PORT MODEL.onnx NAME [--sync]

ModelInfer of the Open Inference Protocol for a one-input model and nothing else (the service's own
inference.proto stubs): typed FP32 contents in, typed contents out; no auth, no validation beyond what
numpy does, no cache, no logs, no metrics; grpcio's asyncio server, onnxruntime with one thread. What
grpcio's asyncio server can do at best on this machine: the floor under any servicer on it. With `--sync`,
the same servicer on grpcio's thread-pool server (16 threads), whose handlers run outside any event loop.
"""

from __future__ import annotations

import asyncio
import sys
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort

from inference_service.grpc import inference_pb2 as pb
from inference_service.grpc import inference_pb2_grpc as pb_grpc


class Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, model_path: str, name: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.outputs = [(o.name, "int64" in o.type) for o in self.session.get_outputs()]
        self.name = name

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=True)

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        return self.infer(request)

    def infer(self, request: Any) -> Any:
        item = request.inputs[0]
        x = np.asarray(item.contents.fp32_contents, dtype=np.float32).reshape(tuple(item.shape))
        reply = pb.ModelInferResponse(model_name=self.name, model_version="1")
        for (name, is_int), result in zip(self.outputs, self.session.run(None, {self.input: x}), strict=True):
            out = reply.outputs.add(name=name, datatype="INT64" if is_int else "FP32", shape=result.shape)
            if is_int:
                out.contents.int64_contents.extend(result.ravel().tolist())
            else:
                out.contents.fp32_contents.extend(result.ravel().tolist())
        return reply


class SyncServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The same work on grpcio's thread-pool server."""

    def __init__(self, model_path: str, name: str) -> None:
        self.servicer = Servicer(model_path, name)

    def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=True)

    def ModelInfer(self, request: Any, context: Any) -> Any:
        return self.servicer.infer(request)


def serve_sync(port: int, model_path: str, name: str) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(SyncServicer(model_path, name), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


async def serve(port: int, model_path: str, name: str) -> None:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(model_path, name), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    if "--sync" in sys.argv[4:]:
        serve_sync(int(sys.argv[1]), sys.argv[2], sys.argv[3])
    else:
        asyncio.run(serve(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
