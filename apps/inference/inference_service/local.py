"""`python -m inference_service.local --model-repository build/models` (what `make serve` runs).

Starts a private redis-server on a free loopback port, then the service with uvicorn on 127.0.0.1:8080 (or
--port), and stops redis and removes its folder on exit: after Ctrl-C (SIGINT), SIGTERM or SIGHUP (the
terminal closing) alike. uvicorn drains on SIGINT and SIGTERM and then re-raises the signal, which would end
the process before any cleanup ran; here each of the three signals ends it with SystemExit (exit status
128 + the signal's number) once the service has drained. Authentication stays on: a random API key is
generated and printed unless --api-key is given (or --no-auth for a quick look); /docs and /openapi.json
open without a key (INFERENCE_PUBLIC_DOCS, off in the manifests).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/sbin/redis-server" if Path("/usr/sbin/redis-server").exists() else None
    )
    if found is None:
        raise FileNotFoundError("redis-server not found on PATH (make setup installs it)")
    return found


class RedisProcess:
    """A throw-away redis-server on 127.0.0.1:<port> with no persistence; restartable on the same port."""

    def __init__(self, port: int | None = None, password: str | None = None) -> None:
        self.port = port or free_port()
        self.password = password
        self._dir = tempfile.mkdtemp(prefix="inference-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        args = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", self._dir, "--maxmemory", "256mb",
            "--maxmemory-policy", "allkeys-lru",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        # Its own session: a Ctrl-C in the terminal reaches the service only, which drains, then stops redis.
        self._proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._proc.returncode} on port {self.port}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(64):
                    return
            time.sleep(0.02)
        raise TimeoutError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but nothing answers (a stalled server)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@contextlib.contextmanager
def running_redis() -> Iterator[RedisProcess]:
    redis = RedisProcess()
    try:
        redis.start()
        yield redis
    finally:
        redis.close()


#: The signals that stop `make serve`: Ctrl-C, `kill`, the terminal closing.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stopping:
    """Turns the stop signals into SystemExit, so that every `finally` and ExitStack runs.

    While uvicorn serves it handles SIGINT and SIGTERM itself (a graceful drain) and re-raises the signal
    afterwards, into the handler installed here; SIGHUP, which uvicorn ignores, is handed to uvicorn as a
    SIGTERM. The exit status names the first signal received.
    """

    def __init__(self) -> None:
        self.first: int | None = None
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._exit)

    def _exit(self, signum: int, _frame: object) -> None:
        raise SystemExit(128 + (self.first or signum))

    @contextlib.contextmanager
    def serving(self, server: uvicorn.Server) -> Iterator[None]:
        def hangup(signum: int, frame: Any) -> None:
            self.first = self.first or signum
            server.handle_exit(signal.SIGTERM, frame)

        signal.signal(signal.SIGHUP, hangup)
        try:
            yield
        finally:
            signal.signal(signal.SIGHUP, self._exit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inference_service.local", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model-repository", type=Path, default=Path("build/models"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--api-key", default=None, help="the API key to accept (default: a random one, printed)"
    )
    parser.add_argument("--no-auth", action="store_true", help="turn authentication off")
    parser.add_argument("--no-redis", action="store_true", help="run without the Redis tier")
    args = parser.parse_args(argv)
    if not args.model_repository.is_dir():
        parser.error(f"{args.model_repository} does not exist; run `make models` first")

    from inference_service.app import create_app
    from inference_service.settings import Settings

    key = args.api_key or secrets.token_urlsafe(24)
    stopping = _Stopping()
    with contextlib.ExitStack() as stack:
        redis_url = ""
        if not args.no_redis:
            redis = stack.enter_context(running_redis())
            redis_url = redis.url
            print(f"redis-server on {redis.url}", file=sys.stderr)
        os.environ.setdefault("INFERENCE_ACCESS_LOG", "true")
        settings = Settings(
            model_repository=args.model_repository,
            redis_url=redis_url,
            auth_enabled=not args.no_auth,
            api_keys=key,
            host=args.host,
            port=args.port,
            public_docs=True,
        )
        base = f"http://{args.host}:{args.port}"
        if not args.no_auth:
            print(
                f"API key: {key}\n  curl -H 'Authorization: Bearer {key}' {base}/v2/models/breast-cancer",
                file=sys.stderr,
            )
        print(f"API documentation: {base}/docs", file=sys.stderr)
        config = uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=int(settings.shutdown_drain_seconds),
        )
        server = uvicorn.Server(config)
        with stopping.serving(server):
            server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
