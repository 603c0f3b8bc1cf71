"""A real `python -m inference_service` process (the container entry point) for the model tests."""

from __future__ import annotations

import itertools
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.support.processes import http_status
from tests.support.service import running_service

API_KEY = "model-build-test-key-0123456789"
_logs = itertools.count()


@dataclass(frozen=True)
class Server:
    url: str  # host:port
    process: subprocess.Popen[bytes]
    log: Path

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://{self.url}{path}", timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def log_lines(self) -> list[dict[str, object]]:
        """The service's JSON log lines on stderr (anything else is kept as {"raw": line})."""
        lines = []
        for raw in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = {"raw": raw}
            lines.append(parsed if isinstance(parsed, dict) else {"raw": raw})
        return lines


ServerFactory = Callable[..., AbstractContextManager[Server]]


@pytest.fixture
def serve(tmp_path: Path) -> ServerFactory:
    """Starts the service on a free loopback port and waits until it is ready, or (until_ready=False) until
    it is ready or reports a failed load; stops it afterwards."""

    @contextmanager
    def factory(repository: Path, models: str, *, until_ready: bool = True) -> Iterator[Server]:
        log = tmp_path / f"server-{next(_logs)}.log"

        def settled(base: str) -> bool:
            return http_status(f"{base}/v2/health/ready") == 200 or (
                not until_ready and http_status(f"{base}/v2/health/live") == 503
            )

        with running_service(
            repository,
            settings={"models": models, "api_keys": API_KEY, "access_log": "false"},
            ready=settled,
            what="the server",
            grace_s=30,
            stdout=None,
            stderr=log,
        ) as service:
            yield Server(url=service.address, process=service.process, log=log)

    return factory


@pytest.fixture
def api_key() -> str:
    return API_KEY
