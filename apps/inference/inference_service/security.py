"""API-key authentication: `Authorization: Bearer <key>` or `X-API-Key: <key>`, compared in constant time."""

from __future__ import annotations

import hmac

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
#: Prometheus exposition: its labels name the served models, so it takes the scraper's own bearer token (not
#: an API key: a caller granted one model must not learn the others), never an anonymous request.
METRICS_PATH = "/metrics"
#: Open as well where INFERENCE_PUBLIC_DOCS is true (the Swagger UI page, its OAuth redirect, the document).
DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json"})


class ApiKeys:
    """The accepted keys. Checking compares against every key without stopping early."""

    def __init__(self, keys: list[bytes]) -> None:
        self._keys = list(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def check(self, presented: bytes | None) -> bool:
        if not presented:
            return False
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(presented, key)
        return matched


def presented_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request carries in its raw ASGI headers, if any."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return token.strip()
        elif name == b"x-api-key":
            return value.strip()
    return None


def scraper_allowed(headers: list[tuple[bytes, bytes]], token: bytes | None) -> bool:
    """One `Authorization: Bearer <token>` header with the scraper's token (constant time); none: never."""
    presented: bytes | None = None
    for name, value in headers:
        if name == b"authorization":
            if presented is not None:
                return False  # a repeated header decides nothing
            scheme, _, presented = value.partition(b" ")
            if scheme.lower() != b"bearer":
                return False
    if token is None or presented is None:
        return False
    return hmac.compare_digest(presented.strip(), token)
