"""The front of the REST endpoints: one pure-ASGI middleware for every request: request id, the limits, the
identity gate, body-size pre-check, the inference routes handed to the dataplane directly (matched by
inference_service.rest.inference), latency metrics by route template and model, and a structured JSON access
log line. The gRPC endpoints go through the same front (its counters, limits, gate and logs).

Pure ASGI (not BaseHTTPMiddleware) because per-request framework overhead dominates on small CPUs.
Metric labels stay bounded whatever clients send: the route is a template (or `other`), the status a class,
and the model label is the name only for served models, `(unknown)` for any other name.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Collection
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inference_service.accesslog import AccessLog
from inference_service.connections import CONNECTIONS_KEY
from inference_service.dataplane import InferenceHandler
from inference_service.identity.gate import Gate
from inference_service.logs import REQUEST_ID, iso_time
from inference_service.metrics import Metrics
from inference_service.responses import error_response, send_response
from inference_service.rest.inference import BINARY_HEADER, match
from inference_service.security import METRICS_PATH, OPEN_PATHS, scraper_allowed

log = logging.getLogger("inference.limits")
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_RETRY = [(b"retry-after", b"1")]
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="metrics"')]
UNKNOWN_MODEL = "(unknown)"  # not a valid model name: it cannot collide with a served one


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        api_keys: Gate | None,
        max_body_bytes: int,
        access_log: AccessLog | None,
        served_models: Collection[str],
        inference: InferenceHandler | None = None,
        metrics_token: bytes | None = None,
        max_connections: int = 1_000_000,
        max_in_flight: int = 1_000_000,
        open_paths: Collection[str] = OPEN_PATHS,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.api_keys = api_keys
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.served = frozenset(served_models)
        self.inference = inference
        self.metrics_token = metrics_token
        self.max_connections = max_connections
        self.max_in_flight = max_in_flight
        self._refusals = 0  # 503s for a limit since the last log line (one line per 10 s at most)
        self._logged = 0.0
        # the gate's API keys and tokens never open /metrics: it has its own check above
        self.open_paths = frozenset(open_paths) | {METRICS_PATH}
        # Requests in flight: a plain counter the gauge reads at scrape time (no lock per request).
        self.active = 0
        metrics.in_flight.set_function(lambda: self.active)
        # Request ids: a random per-process prefix and a counter (unique, and cheaper than a uuid4 each).
        self._id_prefix = os.urandom(6).hex().encode()
        self._ids = itertools.count(1)

    def request_id(self, presented: bytes | None) -> bytes:
        """The caller's x-request-id when it is well formed, else a fresh one."""
        if presented and _REQUEST_ID.match(presented):
            return presented
        return b"%s%x" % (self._id_prefix, next(self._ids))

    def note_refusal(self, scope: Scope) -> None:
        """One log line per 10 s at most for requests refused at a limit, with how many since the last."""
        self._refusals += 1
        now = time.monotonic()
        if now - self._logged >= 10:
            connections = scope.get(CONNECTIONS_KEY, 0)
            log.warning(
                "refused %d request(s) with 503 at a limit: %d in flight (max %d), %d connections (max %d)",
                self._refusals, self.active, self.max_in_flight, connections, self.max_connections,
            )  # fmt: skip
            self._refusals, self._logged = 0, now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = b""
        content_length = 0
        binary: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _REQUEST_ID.match(value):
                    request_id = value
            elif name == b"content-length":
                content_length = int(value) if value.isdigit() else 0
            elif name == BINARY_HEADER:
                binary = value
        if not request_id:
            request_id = self.request_id(None)
        id_header = [(b"x-request-id", request_id)]
        status = 500
        path: str = scope["path"]
        target = match(path) if self.inference is not None and scope["method"] == "POST" else None

        self.active += 1
        request_text = request_id.decode()
        request_token = REQUEST_ID.set(request_text)
        try:
            if path not in OPEN_PATHS and (
                self.active > self.max_in_flight or scope.get(CONNECTIONS_KEY, 0) > self.max_connections
            ):
                status = 503
                message = "the server is at its connection or request limit; retry shortly"
                await send_response(send, status, error_response(status, message), [*_RETRY, *id_header])
                self.note_refusal(scope)
            elif (
                path == METRICS_PATH
                and self.api_keys is not None
                and not scraper_allowed(scope["headers"], self.metrics_token)
            ):
                status = 401
                message = "/metrics needs the scraper's token: `Authorization: Bearer <metrics token>`"
                await send_response(send, status, error_response(status, message), [*_CHALLENGE, *id_header])
            elif (
                self.api_keys is not None
                and path not in self.open_paths
                and (refusal := await self.api_keys.refuse(scope, request_id)) is not None
            ):
                status = refusal.status
                await send_response(send, status, refusal.response, [*refusal.headers, *id_header])
            elif content_length > self.max_body_bytes:
                status = 413
                message = f"request body of {content_length} bytes exceeds the limit of {self.max_body_bytes}"
                await send_response(send, status, error_response(status, message), id_header)
            elif target is not None:
                assert self.inference is not None
                status = await self.inference(scope, receive, send, target, binary, id_header)
            else:

                async def send_with_id(message: Message) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                        message["headers"] = [*message.get("headers", []), *id_header]
                    await send(message)

                await self.app(scope, receive, send_with_id)
        finally:
            self.active -= 1
            REQUEST_ID.reset(request_token)
            if self.api_keys is not None:
                self.api_keys.audited(scope, status)
            elapsed = time.perf_counter() - started
            if target is not None:
                template, model = target.template, target.model
            else:
                route = scope.get("route")
                template = getattr(route, "path", None) or ("/v2/..." if path.startswith("/v2/") else "other")
                params: dict[str, Any] = scope.get("path_params") or {}
                model = str(params.get("model_name", ""))
            label = model if not model or model in self.served else UNKNOWN_MODEL
            self.metrics.request_latency.labels(template, label, f"{status // 100}xx", "http").observe(
                elapsed
            )
            if self.access_log is not None:
                line: dict[str, Any] = {
                    "time": iso_time(time.time()),
                    "level": "info",
                    "logger": "access",
                    "request_id": request_text,
                    "method": scope["method"],
                    "path": path,
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client": (scope.get("client") or ("", 0))[0],
                }
                if model:
                    line["model"] = model
                self.access_log.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
