"""One pure-ASGI middleware for every request: request id, API-key check, body-size pre-check, latency
metrics by route template and model, and a structured JSON access log line.

Pure ASGI (not BaseHTTPMiddleware) because per-request framework overhead dominates on small CPUs.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inference_service.metrics import Metrics
from inference_service.security import OPEN_PATHS, ApiKeys, presented_key

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
log = logging.getLogger("inference.access")


def _error(status: int, message: str, request_id: bytes, extra: list[tuple[bytes, bytes]]) -> list[Message]:
    body = orjson.dumps({"error": message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id),
        *extra,
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        api_keys: ApiKeys | None,
        max_body_bytes: int,
        access_log: bool,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.api_keys = api_keys
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self._out = sys.stdout.buffer
        self._latency: dict[tuple[str, str, str], Any] = {}  # labelled children, looked up once

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = b""
        content_length = 0
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _REQUEST_ID.match(value):
                request_id = value
            elif name == b"content-length":
                content_length = int(value) if value.isdigit() else 0
        if not request_id:
            request_id = uuid.uuid4().hex.encode()
        status = 500
        path: str = scope["path"]

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            if (
                self.api_keys is not None
                and path not in OPEN_PATHS
                and not self.api_keys.check(presented_key(scope["headers"]))
            ):
                for message in _error(
                    401,
                    "missing or invalid API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                    request_id,
                    [(b"www-authenticate", b'Bearer realm="inference"')],
                ):
                    await send(message)
                status = 401
            elif content_length > self.max_body_bytes:
                for message in _error(
                    413, f"request body of {content_length} bytes exceeds the limit of {self.max_body_bytes}",
                    request_id, [],
                ):  # fmt: skip
                    await send(message)
                status = 413
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or ("/v2/..." if path.startswith("/v2/") else "other")
            params: dict[str, Any] = scope.get("path_params") or {}
            model = str(params.get("model_name", ""))
            labels = (template, model, f"{status // 100}xx")
            child = self._latency.get(labels)
            if child is None:
                child = self._latency[labels] = self.metrics.request_latency.labels(*labels)
            child.observe(elapsed)
            if self.access_log:
                line: dict[str, Any] = {
                    "ts": time.time(),
                    "level": "info",
                    "logger": "access",
                    "request_id": request_id.decode(),
                    "method": scope["method"],
                    "path": path,
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client": (scope.get("client") or ("", 0))[0],
                }
                if model:
                    line["model"] = model
                self._out.write(orjson.dumps(line) + b"\n")
                self._out.flush()
