"""Fixtures for the service tests that need the real server process (`python -m inference_service`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest

from inference_service.local import free_port

ServerFactory = Callable[..., AbstractContextManager[tuple[subprocess.Popen[bytes], str]]]


@pytest.fixture
def server_process(model_repository: Path) -> ServerFactory:
    """Starts the service process (auth off, stdout piped) with extra INFERENCE_* settings, waits until it
    is ready, yields (process, base URL) and kills it if the test left it running."""

    @contextmanager
    def factory(**settings: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
        port = free_port()
        env = {
            **os.environ,
            "INFERENCE_MODEL_REPOSITORY": str(model_repository),
            "INFERENCE_PORT": str(port),
            "INFERENCE_HOST": "127.0.0.1",
            "INFERENCE_AUTH_ENABLED": "false",
            **{f"INFERENCE_{k.upper()}": v for k, v in settings.items()},
        }
        command = [sys.executable, "-m", "inference_service"]
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            yield proc, base
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    return factory
