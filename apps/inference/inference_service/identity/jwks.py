"""The issuer's signing keys (a JWKS) from a mounted file or an https URL, cached in memory.

Refreshed in the background once the set is older than `max_age`, and at once when a token names a `kid`
the set lacks (a key rotation), but never more often than once per `min_interval`: a stream of tokens with
made-up kids cannot turn into a stream of fetches. Concurrent misses share one fetch. Only asymmetric keys
for an allowed algorithm are kept: a symmetric (`oct`) key in the set is dropped, so no token can be checked
with HMAC against published key material.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from jwt import PyJWK
from jwt.exceptions import PyJWKError

log = logging.getLogger("inference.identity")

ASYMMETRIC = frozenset({"RSA", "EC", "OKP"})
MAX_JWKS_BYTES = 1 << 20


def check_url(url: str) -> str:
    """https, or http only to a loopback address (a local test issuer); raises ValueError otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname:
        try:
            if parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback:
                return url
        except ValueError:
            pass
    raise ValueError(f"INFERENCE_OIDC_JWKS_URL {url!r}: must be https:// (http:// only to loopback)")


def parse_jwks(data: bytes, algorithms: frozenset[str], source: str) -> dict[str, PyJWK]:
    """kid -> key for every usable signing key; ValueError naming the source when the set is unusable."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"JWKS {source}: not JSON: {exc}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f'JWKS {source}: expected {{"keys": [...]}}')
    keys: dict[str, PyJWK] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        kid, kty = entry.get("kid"), entry.get("kty")
        if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig" or kty not in ASYMMETRIC:
            log.warning("JWKS %s: key %d skipped (needs a kid, use sig, kty RSA/EC/OKP)", source, index)
            continue
        try:
            key = PyJWK(entry)
        except PyJWKError as exc:
            log.warning("JWKS %s: key %r skipped: %s", source, kid, exc)
            continue
        if key.algorithm_name not in algorithms:
            log.warning("JWKS %s: key %r skipped: algorithm %s not allowed", source, kid, key.algorithm_name)
            continue
        keys.setdefault(kid, key)
    return keys


class JwksCache:
    def __init__(
        self,
        *,
        file: Path | None,
        url: str,
        algorithms: frozenset[str],
        min_interval: float,
        max_age: float,
        timeout: float = 5.0,
    ) -> None:
        if (file is None) == (not url):
            raise ValueError("set exactly one of INFERENCE_OIDC_JWKS_FILE and INFERENCE_OIDC_JWKS_URL")
        self.file = file
        self.url = check_url(url) if url else ""
        self.algorithms = algorithms
        self.min_interval = min_interval
        self.max_age = max_age
        self.timeout = timeout
        self.keys: dict[str, PyJWK] = {}
        self.generation = 0  # bumped whenever the set changes
        self.fetches = 0
        self._loaded_at = 0.0
        self._attempted_at = -float("inf")
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[bool] | None = None

    @property
    def source(self) -> str:
        return str(self.file) if self.file is not None else self.url

    def _read(self) -> bytes:
        self.fetches += 1
        if self.file is not None:
            try:
                return self.file.read_bytes()[: MAX_JWKS_BYTES + 1]
            except OSError as exc:
                raise ValueError(f"INFERENCE_OIDC_JWKS_FILE {self.file}: cannot read: {exc}") from exc
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (checked)
            data: bytes = response.read(MAX_JWKS_BYTES + 1)
        return data

    def _install(self, data: bytes) -> None:
        if len(data) > MAX_JWKS_BYTES:
            raise ValueError(f"JWKS {self.source}: larger than {MAX_JWKS_BYTES} bytes")
        keys = parse_jwks(data, self.algorithms, self.source)
        if keys.keys() != self.keys.keys() or any(keys[k].key != self.keys[k].key for k in keys):
            self.generation += 1
        self.keys = keys
        self._loaded_at = time.monotonic()

    def load(self) -> None:
        """The first load, at startup: a file must be readable; an unreachable URL is retried on demand.
        It does not count against the refresh interval: a key rotated just after the start is fetched."""
        try:
            self._install(self._read())
        except ValueError:
            if self.file is not None:
                raise
            log.exception("JWKS %s: first load failed; tokens are refused until it loads", self.source)
        except OSError as exc:
            log.error("JWKS %s: first load failed (%s); tokens are refused until it loads", self.source, exc)

    async def refresh(self) -> bool:
        """Re-reads the set unless one was read within min_interval; whether it read."""
        async with self._lock:
            now = time.monotonic()
            if now - self._attempted_at < self.min_interval:
                return False
            self._attempted_at = now
            try:
                self._install(await asyncio.to_thread(self._read))
            except (OSError, ValueError) as exc:
                known = len(self.keys)
                log.error("JWKS %s: refresh failed, keeping the %d known keys: %s", self.source, known, exc)
            return True

    async def key(self, kid: str) -> PyJWK | None:
        """The key for kid, refreshing the set (rate limited) when kid is unknown."""
        found = self.keys.get(kid)
        if found is None and await self.refresh():
            found = self.keys.get(kid)
        return found

    def tick(self) -> None:
        """Starts a background refresh when the set is older than max_age (called on token requests)."""
        if time.monotonic() - self._loaded_at > self.max_age and (
            self._background is None or self._background.done()
        ):
            self._background = asyncio.get_running_loop().create_task(self.refresh())

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "keys": sorted(self.keys), "fetches": self.fetches}
