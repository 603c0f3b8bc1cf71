"""The bottom floor of the serving layers: what every endpoint, the dataplane and the identity gate send and
read, with nothing of theirs imported.

A response ready to send (`CachedResponse`: the dataplane's results, its response cache's entries, the
gate's and the front's refusals), the `{"error": message}` body every refusal and failure carries, the raw
ASGI send of one, the request body read under a size limit, and FastAPI's JSON response for the routed
endpoints. The errors a client may see are `inference_service.errors`, on the same floor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson
from fastapi.responses import Response
from starlette.types import Receive, Send

from inference_service.errors import PayloadTooLarge

JSON = b"application/json"


class CachedResponse(NamedTuple):
    """A whole inference response, ready to send: body bytes, raw ASGI headers, and how many rows it holds.

    A tuple of bytes, tuples of bytes and an int: the cyclic GC stops tracking it after its first pass, so
    ten thousand cached responses do not lengthen every full collection (a p99 cost)."""

    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    rows: int

    @property
    def size(self) -> int:
        return len(self.body) + 64 * (len(self.headers) + 2)  # the body plus a rough per-entry overhead


def error_response(status: int, message: str) -> CachedResponse:
    body = orjson.dumps({"error": message})
    headers = ((b"content-type", JSON), (b"content-length", str(len(body)).encode()))
    return CachedResponse(body=body, headers=headers, rows=0)


async def send_response(
    send: Send, status: int, response: CachedResponse, extra: list[tuple[bytes, bytes]]
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [*response.headers, *extra]})
    await send({"type": "http.response.body", "body": response.body})


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing more than `limit` bytes even without (or with a lying) length."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def json_response(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(content), status_code=status_code, media_type="application/json", headers=headers
    )
