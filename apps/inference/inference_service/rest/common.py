"""Helpers shared by the REST endpoint modules."""

from __future__ import annotations

from fastapi import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from inference_service.state import ServiceState


def state_of(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.inference
    return state


class HotRoute(Route):
    """A plain Starlette route that records itself in the scope (as FastAPI's routes do), so metrics and
    access logs can label requests by route template."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        await super().handle(scope, receive, send)
