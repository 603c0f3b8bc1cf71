"""Start and stop etcd, kube-apiserver and kube-controller-manager on free loopback ports.

Everything lives in one temporary folder (data, certificates, keys, logs), removed on exit; every process is
stopped on exit, on failure too. Nothing is reached but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from testcluster.errors import ClusterTestError
from testcluster.processes import free_port, log_tail, stop_all
from testcluster.versions import REPO_ROOT

BIN_DIR = REPO_ROOT / ".tools" / "bin"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
SETUP_HINT = "run `make setup` (or tools/setup/k8s-tools.sh) to build it"
READY_TIMEOUT_S = 120.0  # generous: the machine may be busy (CI runs the whole suite at once)


def binary(name: str) -> Path:
    path = BIN_DIR / name
    if not (path.exists() and os.access(path, os.X_OK)):
        raise ClusterTestError(f"{name} not found at {path}; {SETUP_HINT}")
    return path


def ensure_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise ClusterTestError(
                f"port 127.0.0.1:{port} for {what} is in use; stop what listens there "
                f"(ss -ltnp 'sport = :{port}')"
            ) from None


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 5) -> str:
        return log_tail(self.log, lines, width=200)

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise ClusterTestError(
                f"{self.name} exited with code {code}; its log ({self.log}) ends: {self.tail()}"
            )


@dataclass
class ControlPlane:
    """A running control plane: its URL, an admin token, a kubeconfig and the processes."""

    workdir: Path
    url: str = ""
    token: str = ""
    kubeconfig: Path = Path()
    processes: list[Process] = field(default_factory=list)

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=False,  # the apiserver's self-signed serving certificate, on loopback  # noqa: S501
            timeout=timeout,
        )

    def check_alive(self) -> None:
        for proc in self.processes:
            proc.check_alive()

    def start_process(self, name: str, args: list[str]) -> Process:
        log = self.workdir / f"{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(
            args, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        handle.close()
        proc = Process(name=name, popen=popen, log=log)
        self.processes.append(proc)
        return proc

    def stop(self) -> None:
        stop_all(p.popen for p in reversed(self.processes))
        self.processes.clear()


def _wait(what: str, probe: Iterator[bool] | None, check: ControlPlane, deadline: float) -> None:
    assert probe is not None
    for ok in probe:
        if ok:
            return
        check.check_alive()
        if time.monotonic() > deadline:
            raise ClusterTestError(
                f"{what} did not become ready in {READY_TIMEOUT_S:.0f} s; logs in {check.workdir}"
            )
        time.sleep(0.2)


def _http_ok(client: httpx.Client, path: str) -> Iterator[bool]:
    while True:
        try:
            yield client.get(path).status_code == 200
        except httpx.HTTPError:
            yield False


def _etcd_ok(port: int) -> Iterator[bool]:
    with httpx.Client(timeout=2.0) as client:
        yield from _http_ok(client, f"http://127.0.0.1:{port}/health")


def _write_kubeconfig(path: Path, url: str, token: str) -> None:
    # JSON is YAML; clients (kubectl, the controllers) read it as a kubeconfig.
    import json

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": url, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    path.chmod(0o600)


def _start(plane: ControlPlane, apiserver_args: tuple[str, ...]) -> None:
    work = plane.workdir
    etcd_port, peer_port, api_port, cm_port = free_port(), free_port(), free_port(), free_port()
    for port, what in ((etcd_port, "etcd"), (peer_port, "etcd peers"), (api_port, "kube-apiserver")):
        ensure_free(port, what)
    plane.token = secrets.token_hex(24)
    (work / "tokens.csv").write_text(f"{plane.token},admin,admin,system:masters\n", encoding="utf-8")
    key = work / "sa.key"
    proc = subprocess.run(
        ["openssl", "genrsa", "-out", str(key), "2048"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ClusterTestError(f"openssl genrsa failed ({proc.stderr.strip()}); install openssl")

    deadline = time.monotonic() + READY_TIMEOUT_S
    plane.start_process(
        "etcd",
        [
            str(binary("etcd")),
            "--data-dir",
            str(work / "etcd"),
            "--name",
            "test",
            "--listen-client-urls",
            f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer_port}",
            "--initial-cluster",
            f"test=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",  # a throwaway test store: durability is not what is tested
            "--log-level",
            "warn",
        ],
    )
    _wait("etcd", _etcd_ok(etcd_port), plane, deadline)

    plane.url = f"https://127.0.0.1:{api_port}"
    plane.start_process(
        "kube-apiserver",
        [
            str(binary("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--cert-dir={work / 'certs'}",
            f"--token-auth-file={work / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={key}",
            f"--service-account-signing-key-file={key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--enable-priority-and-fairness=false",
            "--v=0",
            *apiserver_args,
        ],
    )
    with plane.client(timeout=2.0) as client:
        _wait("kube-apiserver", _http_ok(client, "/readyz"), plane, deadline)

    plane.kubeconfig = work / "kubeconfig"
    _write_kubeconfig(plane.kubeconfig, plane.url, plane.token)
    plane.start_process(
        "kube-controller-manager",
        [
            str(binary("kube-controller-manager")),
            f"--kubeconfig={plane.kubeconfig}",
            "--leader-elect=false",
            "--controllers=*,-serviceaccount-token",  # no token controller: no signing key is given to it
            "--bind-address=127.0.0.1",
            f"--secure-port={cm_port}",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            "--v=0",
        ],
    )
    time.sleep(0.5)
    plane.check_alive()


@contextlib.contextmanager
def control_plane(keep: bool = False, *, apiserver_args: tuple[str, ...] = ()) -> Iterator[ControlPlane]:
    """A fresh control plane for the duration of the block; stopped and removed afterwards.
    `apiserver_args` are added to kube-apiserver's flags (the node test's)."""
    for name in BINARIES:
        binary(name)
    if shutil.which("openssl") is None:
        raise ClusterTestError("openssl is not on PATH; install it (Debian: apt-get install openssl)")
    workdir = Path(tempfile.mkdtemp(prefix="mlplatform-cluster-"))
    plane = ControlPlane(workdir=workdir)
    try:
        _start(plane, apiserver_args)
        yield plane
    finally:
        plane.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
