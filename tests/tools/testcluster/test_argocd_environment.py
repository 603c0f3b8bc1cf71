"""The pieces around Argo CD in the Argo CD test (make argocd-test): the loopback git server, the cluster
proxy, and one clear line for each broken environment (missing binary, port in use, git server that cannot
start).
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from testcluster import nodes
from testcluster.errors import ClusterTestError
from testcluster.gitserver import git, git_server
from testcluster.proxy import cluster_proxy

REPO = Path(__file__).resolve().parents[3]


def test_git_server_serves_head_and_new_commits(tmp_path: Path) -> None:
    head = git(REPO, "rev-parse", "HEAD")
    with git_server(REPO, tmp_path) as served:
        assert served.url.startswith("http://127.0.0.1:")
        listed = subprocess.run(["git", "ls-remote", served.url], capture_output=True, text=True, check=True)
        remote = listed.stdout
        assert f"{head}\trefs/heads/main" in remote
        (served.work / "marker.txt").write_text("x\n")
        commit = served.commit("test commit", ["marker.txt"])
        assert served.push(commit, "main") == commit
        clone = tmp_path / "clone"
        subprocess.run(["git", "clone", "-q", served.url, str(clone)], check=True)
        assert git(clone, "rev-parse", "HEAD") == commit
        assert (clone / "marker.txt").read_text() == "x\n"
        push = ["git", "-C", str(clone), "push", "-q", "origin", "HEAD:refs/heads/x"]
        pushed = subprocess.run(push, capture_output=True, check=False)
        assert pushed.returncode != 0, "the loopback server must be read-only over HTTP"


def test_git_server_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ClusterTestError) as err, git_server(REPO, tmp_path, port=port):
            pass
    message = str(err.value)
    assert f"127.0.0.1:{port}" in message and "in use" in message and "\n" not in message


def test_git_server_without_git_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ClusterTestError) as err, git_server(REPO, tmp_path):
        pass
    assert "git is not on PATH" in str(err.value) and "apt-get install git" in str(err.value)


def test_git_server_that_serves_nothing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A broken http-backend: the server starts but cannot serve the repository.
    fake = tmp_path / "exec"
    fake.mkdir()
    backend = fake / "git-http-backend"
    backend.write_text("#!/bin/sh\nexit 1\n")
    backend.chmod(0o755)
    monkeypatch.setattr("testcluster.gitserver._exec_path", lambda: fake)
    with pytest.raises(ClusterTestError) as err, git_server(REPO, tmp_path / "w"):
        pass
    message = str(err.value)
    assert "does not serve" in message and "git http-backend" in message and "\n" not in message


def test_missing_argocd_binary_names_the_setup_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nodes, "BIN_DIR", tmp_path)
    for name in ("argocd", "kwok"):
        with pytest.raises(ClusterTestError) as err:
            nodes.tool(name)
        assert str(err.value) == (
            f"{name} not found at {tmp_path / name}; "
            "run `make argocd-test` once (or tools/setup/argocd-tools.sh) to build it"
        )


@pytest.fixture
def upstream() -> Iterator[int]:
    """A TCP server that answers every connection with b'upstream:' + what it received."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"upstream:" + conn.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    server.close()


def _connect(proxy_port: int, target: str, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        reply = s.recv(200)
        if b" 200 " not in reply.split(b"\r\n")[0]:
            return reply.split(b"\r\n")[0]
        s.sendall(payload)
        return s.recv(200)


def test_cluster_proxy_maps_named_clusters_only(upstream: int) -> None:
    routes = {"https://prod.k8s.example.com": f"https://127.0.0.1:{upstream}"}
    with cluster_proxy(routes) as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        assert _connect(port, "prod.k8s.example.com:443", b"hello") == b"upstream:hello"
        assert _connect(port, "example.org:443", b"hello") == b"HTTP/1.1 403 Forbidden"
        assert _connect(port, "prod.k8s.example.com:8443", b"hello") == b"HTTP/1.1 403 Forbidden"
