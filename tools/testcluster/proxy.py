"""A loopback HTTP CONNECT proxy that maps the clusters named in dist/argocd/ onto test apiservers.

dist/argocd/ names its destinations by their real URLs (https://kubernetes.default.svc,
https://prod.k8s.example.com). Argo CD's cluster Secrets keep those URLs as they are and set `proxyUrl` to
this proxy, which tunnels each host to the apiserver standing in for it; any other host is refused. So no
destination in dist/argocd/ is rewritten, and every one resolves.
"""

from __future__ import annotations

import selectors
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from testcluster.errors import ClusterTestError
from testcluster.processes import free_port


@dataclass(frozen=True)
class Proxy:
    url: str  # http://127.0.0.1:PORT


def _target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    # A selector (epoll), not select(): Argo CD watches every resource type of every cluster through this
    # proxy, hundreds of tunnels once the add-ons' CRDs exist, and select() refuses descriptors past 1024.
    with selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ)
        selector.register(b, selectors.EVENT_READ)
        while True:
            events = selector.select(300)
            if not events:
                return
            for key, _ in events:
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(65536)
                    if data:
                        (b if s is a else a).sendall(data)
                except OSError:  # one side hung up (a watch ended, a client stopped): close the tunnel
                    return
                if not data:
                    return


def _handler(routes: dict[tuple[str, int], tuple[str, int]]) -> type[socketserver.BaseRequestHandler]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            client: socket.socket = self.request
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 8192:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(line) < 2 or line[0] != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            host, _, port = line[1].rpartition(":")
            upstream = routes.get((host, int(port or 443)))
            if upstream is None:
                client.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
                return
            try:
                server = socket.create_connection(upstream, timeout=10)
            except OSError:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            with server:
                server.settimeout(None)
                client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                _pipe(client, server)

    return Handler


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def serving(server: socketserver.BaseServer, name: str) -> Iterator[None]:
    """Run a server in a daemon thread for the duration of the block; shut it down and close it after."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def cluster_proxy(routes: dict[str, str]) -> Iterator[Proxy]:
    """routes: destination URL as dist/argocd/ names it -> the URL of the apiserver that stands in for it."""
    table = {_target(name): _target(url) for name, url in routes.items()}
    port = free_port()
    try:
        server = _Server(("127.0.0.1", port), _handler(table))
    except OSError as exc:
        raise ClusterTestError(
            f"the cluster proxy could not listen on 127.0.0.1:{port} ({exc.strerror})"
        ) from None
    with serving(server, "cluster-proxy"):
        yield Proxy(url=f"http://127.0.0.1:{port}")
