"""Model sources for inference_service.fetch: archives, digests, TLS servers on loopback for the https and oci
kinds."""

from __future__ import annotations

import hashlib
import http.server
import io
import ssl
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
