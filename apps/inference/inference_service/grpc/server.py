"""The gRPC server: grpcio's asyncio server on the running event loop (the REST app's, started from its
lifespan), serving `inference.GRPCInferenceService` and the standard `grpc.health.v1.Health`.

Health: the overall service ("") and `inference.GRPCInferenceService` are SERVING once every model is loaded
and warmed and NOT_SERVING before, after a failed load and while draining, as /v2/health/ready answers.
Message sizes are explicit: a request over `grpc_max_receive_bytes` is refused by grpcio with
RESOURCE_EXHAUSTED before it is parsed; a response over `max_response_bytes` is refused by the servicer with
the REST path's message.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from inference_service.dataplane import InferenceHandler
from inference_service.grpc import inference_pb2_grpc as pb_grpc
from inference_service.grpc.service import SERVICE, InferenceServicer
from inference_service.rest.front import RequestMiddleware
from inference_service.state import ServiceState

log = logging.getLogger("inference.grpc")

#: Room for the response's framing beyond its tensors (names, shapes): the servicer checks the limit itself.
_SEND_MARGIN = 64 * 1024


class GrpcServer:
    def __init__(self, *, state: ServiceState, handler: InferenceHandler, front: RequestMiddleware) -> None:
        s = state.settings
        self.state = state
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", s.grpc_max_receive_bytes),
                ("grpc.max_send_message_length", s.max_response_bytes + _SEND_MARGIN),
                ("grpc.max_concurrent_streams", s.grpc_max_concurrent_streams),
                ("grpc.max_metadata_size", s.max_header_bytes),
                # several uvicorn workers share the port (as they share HTTP's); one process binds it alone
                ("grpc.so_reuseport", 1 if s.workers > 1 else 0),
            ]
        )
        servicer = InferenceServicer(state=state, handler=handler, front=front)
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self.server)  # type: ignore[no-untyped-call]
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        host = s.host if ":" not in s.host else f"[{s.host}]"
        self.address = f"{host}:{s.grpc_port}"
        self.port = self.server.add_insecure_port(self.address)
        if not self.port:
            raise RuntimeError(f"INFERENCE_GRPC_PORT: cannot listen on {self.address} (in use?)")
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._set(False)
        self.state.readiness_hooks.append(self._on_readiness)
        await self.server.start()
        log.info("gRPC (%s, grpc.health.v1) listening on %s", SERVICE, self.address)

    def _on_readiness(self, ready: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._set(ready))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _set(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE):
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        """Refuses new RPCs, lets those in progress finish for up to `grace` seconds."""
        await self._set(False)
        await self.server.stop(grace)
