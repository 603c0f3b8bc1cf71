"""The service as its container runs it (`python -m inference_service`, or another of its entry points) on a
free loopback port, configured by INFERENCE_* settings, started and ready before a test uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import Output, free_port, http_ok, started

READY = "/v2/health/ready"


@dataclass(frozen=True)
class Service:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def address(self) -> str:
        """host:port"""
        return f"127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        """The base URL, http://127.0.0.1:<port>"""
        return f"http://{self.address}"


def service_env(model_repository: Path | None, port: int, settings: Mapping[str, object]) -> dict[str, str]:
    """This process's environment with the service's settings: its model repository, 127.0.0.1:<port>, and
    each setting as INFERENCE_<NAME> (names as the Settings fields: auth_enabled=false, grpc_port=0...)."""
    env = {**os.environ, "INFERENCE_HOST": "127.0.0.1", "INFERENCE_PORT": str(port)}
    if model_repository is not None:
        env["INFERENCE_MODEL_REPOSITORY"] = str(model_repository)
    env.update({f"INFERENCE_{name.upper()}": str(value) for name, value in settings.items()})
    return env


@contextmanager
def running_service(
    model_repository: Path | None,
    *,
    settings: Mapping[str, object] | None = None,
    command: Sequence[str] = (sys.executable, "-m", "inference_service"),
    ready: Callable[[str], bool] | None = None,
    what: str = "the service",
    timeout_s: float = 60.0,
    grace_s: float = 10.0,
    stdout: Output = subprocess.DEVNULL,
    stderr: Output = subprocess.DEVNULL,
) -> Iterator[Service]:
    """Start `command` on a free port with `settings`, wait until ready (GET /v2/health/ready answers 200, or
    `ready(base URL)`), yield it; stop it (SIGTERM, SIGKILL after `grace_s`) when the block ends."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    probe = (lambda: ready(base)) if ready is not None else http_ok(f"{base}{READY}")
    with started(
        command,
        ready=probe,
        what=what,
        timeout_s=timeout_s,
        grace_s=grace_s,
        env=service_env(model_repository, port, settings or {}),
        stdout=stdout,
        stderr=stderr,
    ) as process:
        yield Service(process, port)
