"""Fixtures for the service tests that need the real server process (`python -m inference_service`)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from tests.support.service import running_service

ServerFactory = Callable[..., AbstractContextManager[tuple[subprocess.Popen[bytes], str]]]


@pytest.fixture
def server_process(model_repository: Path) -> ServerFactory:
    """Starts the service process (auth off, stdout piped) with extra INFERENCE_* settings, waits until it
    is ready, yields (process, base URL) and kills it if the test left it running."""

    @contextmanager
    def factory(**settings: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
        with running_service(
            model_repository,
            settings={"auth_enabled": "false", **settings},
            stdout=subprocess.PIPE,
            grace_s=0,
        ) as service:
            yield service.process, service.base

    return factory
