"""Connection limits with real sockets against the real server process (loopback only, every loop bounded)."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx


def _connect(base: str) -> socket.socket:
    parts = urlsplit(base)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the socket within `seconds`, and what it sent before."""
    sock.settimeout(seconds)
    received = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return True, received
            received += chunk
    except TimeoutError:
        return False, received
    except ConnectionResetError:
        return True, received
    return False, received


def test_silent_slow_and_oversized_header_connections_are_closed(server_process) -> None:
    settings = {"models": "breast-cancer:1", "header_timeout_seconds": "1", "max_header_bytes": "4096"}
    with server_process(**settings) as (_, base):
        silent = _connect(base)
        slow = _connect(base)
        slow.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
        for i in range(6):  # one header line every 0.3 s: never complete within the 1 s deadline
            try:
                slow.sendall(b"X-Slow-%d: 1\r\n" % i)
            except OSError:
                break
            time.sleep(0.3)
        closed, _ = _closed_within(slow, 3)
        assert closed, "a connection sending its headers slowly was kept open"
        closed, _ = _closed_within(silent, 3)
        assert closed, "a silent connection was kept open"
        big = _connect(base)
        big.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(100):  # 100 x 1 KiB of header lines, well past the 4 KiB limit
                big.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
        except OSError:
            pass
        closed, reply = _closed_within(big, 3)
        assert closed and reply.startswith(b"HTTP/1.1 431"), reply[:80]
        # A whole request in one write, headers past the limit: its headers complete in the read that
        # brings them, so they are counted as they are parsed (the soak found them served with 200).
        whole = _connect(base)
        whole.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 5000 + b"\r\n\r\n")
        closed, reply = _closed_within(whole, 3)
        assert closed and reply.startswith(b"HTTP/1.1 431"), reply[:80]
        # Headers within the limit are served, on a fresh connection and on a kept-alive one.
        kept = _connect(base)
        for _ in range(2):
            kept.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 3000 + b"\r\n\r\n")
            reply = b""
            while b'{"live":true}' not in reply and len(reply) < 65536:  # the status line, then the body
                chunk = kept.recv(65536)
                assert chunk, reply
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200"), reply[:80]
        # A normal client on a fresh connection is served meanwhile.
        assert httpx.get(f"{base}/v2/health/live").status_code == 200


def test_past_the_connection_limit_requests_get_503_but_health_probes_answer(
    server_process, tabular, rows
) -> None:
    settings = {"models": "breast-cancer:1", "header_timeout_seconds": "30", "max_connections": "20"}
    with server_process(**settings) as (_, base):
        held = [_connect(base) for _ in range(30)]  # silent sockets past the limit of 20
        try:
            time.sleep(0.2)
            with httpx.Client(base_url=base, timeout=10) as client:
                refused = client.post("/v2/models/breast-cancer/infer", json=tabular(rows(1)))
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] == "1"
                assert client.get("/v2/health/live").status_code == 200
                assert client.get("/v2/health/ready").status_code == 200
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 10
        while True:  # once the sockets are closed, requests are served again
            reply = httpx.post(f"{base}/v2/models/breast-cancer/infer", json=tabular(rows(1)))
            if reply.status_code == 200:
                break
            assert time.monotonic() < deadline, reply.status_code
            time.sleep(0.1)
