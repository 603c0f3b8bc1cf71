"""Helpers shared by the route modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from inference_service.state import ServiceState


def state_of(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.inference
    return state


def json_response(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(content), status_code=status_code, media_type="application/json", headers=headers
    )


class HotRoute(Route):
    """A plain Starlette route that records itself in the scope (as FastAPI's routes do), so metrics and
    access logs can label requests by route template."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        await super().handle(scope, receive, send)
