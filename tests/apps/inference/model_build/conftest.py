"""A real `python -m inference_service` process (the container entry point) for the model tests."""

from __future__ import annotations

import hashlib
import http.server
import io
import itertools
import ssl
import subprocess
import tarfile
import threading
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


# Model sources (model_build.fetch): archives, digests, TLS servers on loopback for the https and oci kinds.


def tar_of(files: dict[str, bytes]) -> bytes:
    """A tar of a model version folder (name -> bytes), as a source serves it."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """(cert, RSA key) for 127.0.0.1 and localhost, made with the openssl CLI; trusted via SSL_CERT_FILE."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=x"),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextmanager
def serve_https(handler: type[http.server.BaseHTTPRequestHandler], cert: Path, key: Path) -> Iterator[int]:
    """`handler` served over TLS on a free loopback port (yielded), in a thread, until the block ends."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
