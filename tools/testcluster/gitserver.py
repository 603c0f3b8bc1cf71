"""A loopback git server (git's smart HTTP protocol, `git http-backend` behind a small WSGI app) and the work
clone whose commits it serves.

The served repository is a bare clone of this repository at the commit under test (HEAD). Argo CD's repo
server fetches from it over http://127.0.0.1:PORT/<name>.git exactly as it would from a git host: ls-remote to
resolve `main`, then fetch. Pushing to it (from the work clone) is how the test makes a new commit appear
upstream.
"""

from __future__ import annotations

import os
import shutil
import socketserver
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from testcluster.controlplane import ensure_free
from testcluster.errors import ClusterTestError
from testcluster.processes import free_port
from testcluster.proxy import serving

GIT_HINT = "install git (Debian: apt-get install git); its http-backend serves the repository"
_CGI_KEYS = ("REQUEST_METHOD", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH", "PATH_INFO", "REMOTE_ADDR")


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if proc.returncode != 0:
        raise ClusterTestError(f"git {' '.join(args)} in {cwd} failed: {proc.stderr.strip()[:300]}")
    return proc.stdout.strip()


def _exec_path() -> Path:
    if shutil.which("git") is None:
        raise ClusterTestError(f"git is not on PATH; {GIT_HINT}")
    path = Path(
        subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    )
    if not (path / "git-http-backend").exists():
        raise ClusterTestError(f"git-http-backend not found in {path}; {GIT_HINT}")
    return path


class _Threading(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _app(root: Path, backend: Path) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        env = {k: str(environ[k]) for k in _CGI_KEYS if environ.get(k)}
        env.update(
            GIT_PROJECT_ROOT=str(root),
            GIT_HTTP_EXPORT_ALL="1",
            PATH=os.environ.get("PATH", ""),
            GATEWAY_INTERFACE="CGI/1.1",
            SERVER_PROTOCOL="HTTP/1.1",
        )
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        proc = subprocess.run([str(backend)], input=body, capture_output=True, env=env, check=False)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        if proc.returncode != 0 or not head:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [proc.stderr[:500]]
        status = "200 OK"
        headers = []
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = value.strip()
            else:
                headers.append((key.strip(), value.strip()))
        start_response(status, headers)
        return [payload]

    return app


@dataclass
class GitServer:
    """The bare repository being served, its URL, and the work clone the test commits in."""

    url: str  # http://127.0.0.1:PORT/mlplatform-gitops.git
    bare: Path
    work: Path

    def commit(self, message: str, paths: list[str] | None = None) -> str:
        git(self.work, "add", "--all", *(["--", *paths] if paths else []))
        git(self.work, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.work, "rev-parse", "HEAD")

    def push(self, local: str, remote_branch: str) -> str:
        """Publish a commit of the work clone as the served repository's branch."""
        git(self.work, "push", "-q", "--force", str(self.bare), f"{local}:refs/heads/{remote_branch}")
        return git(self.bare, "rev-parse", f"refs/heads/{remote_branch}")


@contextmanager
def git_server(
    source: Path, workdir: Path, *, name: str = "mlplatform-gitops", port: int = 0
) -> Iterator[GitServer]:
    """Serve a clone of `source` at its HEAD commit (as branch main) on 127.0.0.1 until the block ends."""
    backend = _exec_path() / "git-http-backend"
    head = git(source, "rev-parse", "HEAD")
    workdir.mkdir(parents=True, exist_ok=True)
    work = workdir / "work"
    bare = workdir / "served" / f"{name}.git"
    git(workdir, "clone", "-q", "--no-checkout", str(source), str(work))
    git(work, "checkout", "-q", "-B", "main", head)
    git(work, "config", "user.name", "argocd-test")
    git(work, "config", "user.email", "argocd-test@localhost")
    bare.parent.mkdir(parents=True)
    git(workdir, "init", "-q", "--bare", "--initial-branch=main", str(bare))
    git(bare, "config", "http.receivepack", "false")  # read-only over HTTP
    git(work, "push", "-q", str(bare), "main:refs/heads/main")
    port = port or free_port()
    ensure_free(port, "the loopback git server")
    try:
        server = make_server(
            "127.0.0.1", port, _app(bare.parent, backend), server_class=_Threading, handler_class=_Quiet
        )
    except OSError as exc:
        raise ClusterTestError(
            f"the loopback git server could not listen on 127.0.0.1:{port} ({exc.strerror}); free the port"
        ) from None
    served = GitServer(url=f"http://127.0.0.1:{port}/{name}.git", bare=bare, work=work)
    with serving(server, "git-server"):
        out = subprocess.run(
            ["git", "ls-remote", served.url, "refs/heads/main"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if out.returncode != 0 or head not in out.stdout:
            raise ClusterTestError(
                f"the loopback git server at {served.url} does not serve {head[:12]} "
                f"(git ls-remote: {(out.stderr or out.stdout).strip()[:200]}); "
                f"check `git http-backend` ({backend})"
            )
        yield served
