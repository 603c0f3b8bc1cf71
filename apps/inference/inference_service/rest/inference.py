"""The REST inference endpoints: which request paths are the inference routes, and the router's endpoint
for them. The front (inference_service.rest.front) matches a request here and hands it to the dataplane
straight from ASGI; a request that reaches the router instead meets the same handler through
`InferenceEndpoint` (the routes, rest.v1 and rest.v2, also answer other methods with 405).
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from inference_service.dataplane import InferenceHandler, Target

V2_INFER = "/v2/models/{model_name}/infer"
V2_VERSION_INFER = "/v2/models/{model_name}/versions/{model_version}/infer"
V1_PREDICT = "/v1/models/{model_name}:predict"
BINARY_HEADER = b"inference-header-content-length"


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


class InferenceEndpoint:
    """The same handler as a router endpoint (an ASGI app) for requests that reach the router; the app
    keeps its handler in `app.state.inference_handler`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = match(scope["path"])
        assert target is not None  # the route's own template matched
        handler: InferenceHandler = scope["app"].state.inference_handler
        binary = next((v for k, v in scope["headers"] if k == BINARY_HEADER), None)
        await handler(scope, receive, send, target, binary, [])
