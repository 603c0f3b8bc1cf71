"""Argo CD itself, out of cluster, against a test ControlPlane: a Redis, argocd-repo-server and
argocd-application-controller from the pinned binary (tools/argocd/), configured as Argo CD's install would.

What the install manifests would create and the components need is created here: the `argocd` namespace,
`argocd-cm`, `argocd-secret`, the `default` AppProject (argocd-server creates it on a real install), and one
cluster Secret per destination server that dist/argocd/ names, under its own name and with its URL as it is.
https://kubernetes.default.svc is the cluster Argo CD runs in, reached through KUBECONFIG
(ARGOCD_FAKE_IN_CLUSTER, Argo CD's switch for running out of cluster); every other cluster's Secret sets
`proxyUrl`, which sends it to the apiserver standing in for it (testcluster.proxy).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from testcluster.controlplane import ControlPlane, Process, ensure_free
from testcluster.errors import ClusterTestError
from testcluster.kubeapi import Kube
from testcluster.nodes import tool
from testcluster.processes import free_port

NAMESPACE = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"
REDIS_HINT = "install redis-server (Debian: apt-get install redis-server, or `make setup`)"
READY_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class ArgoCD:
    repo_server: Process
    controller: Process
    redis: Process


def start_process(plane: ControlPlane, name: str, args: list[str], env: dict[str, str]) -> Process:
    """ControlPlane.start_process with an environment of its own; the plane still stops it."""
    log = plane.workdir / f"{name}.log"
    with log.open("wb") as handle:
        popen = subprocess.Popen(
            args,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    proc = Process(name=name, popen=popen, log=log)
    plane.processes.append(proc)
    return proc


def _wait_port(proc: Process, port: int, deadline: float) -> None:
    while True:
        proc.check_alive()
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise ClusterTestError(
                f"{proc.name} did not listen on 127.0.0.1:{port}; its log ({proc.log}) ends: {proc.tail()}"
            )
        time.sleep(0.2)


def _secret(name: str, labels: dict[str, str], data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def configure(kube: Kube, clusters: dict[str, tuple[str, str]], proxy_url: str) -> None:
    """The namespace, settings and cluster Secrets. clusters: name -> (server URL as dist/argocd/ names it,
    a bearer token of the apiserver standing in for it)."""
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "argocd-cm",
                "namespace": NAMESPACE,
                "labels": {"app.kubernetes.io/part-of": "argocd"},
            },
            # Nothing platform-specific: Argo CD's defaults are what is tested. Only the poll interval is
            # shortened; the test asks for a refresh after each commit, as a git webhook would.
            "data": {"timeout.reconciliation": "30s"},
        },
        _secret(
            "argocd-secret",
            {"app.kubernetes.io/part-of": "argocd"},
            {"server.secretkey": os.urandom(16).hex()},
        ),
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AppProject",
            "metadata": {"name": "default", "namespace": NAMESPACE},
            "spec": {
                "sourceRepos": ["*"],
                "destinations": [{"server": "*", "namespace": "*"}],
                "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            },
        },
    ]
    for name, (server, token) in sorted(clusters.items()):
        config: dict[str, Any] = {"tlsClientConfig": {"insecure": True}}  # the test apiservers self-sign
        if server != IN_CLUSTER:
            # The cluster Argo CD runs in is reached through KUBECONFIG (ARGOCD_FAKE_IN_CLUSTER below),
            # and Argo CD would send even that through a proxyUrl; every other cluster goes through the proxy.
            config.update(bearerToken=token, proxyUrl=proxy_url)
        objects.append(
            _secret(
                f"cluster-{name}",
                {"argocd.argoproj.io/secret-type": "cluster"},
                {"name": name, "server": server, "config": json.dumps(config)},
            )
        )
    for obj in objects:
        result = kube.apply(obj)
        if not result.ok:
            raise ClusterTestError(
                f"setting up Argo CD: {obj['kind']} {obj['metadata']['name']}: {result.message}"
            )


def start(plane: ControlPlane) -> ArgoCD:
    """Redis, the repo server and the application controller, on free loopback ports."""
    argocd = tool("argocd")
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise ClusterTestError(f"redis-server is not on PATH; {REDIS_HINT}")
    deadline = time.monotonic() + READY_TIMEOUT_S
    redis_port, repo_port = free_port(), free_port()
    for port, what in ((redis_port, "Argo CD's Redis"), (repo_port, "argocd-repo-server")):
        ensure_free(port, what)
    redis = plane.start_process(
        "argocd-redis",
        [redis_bin, "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
    )
    _wait_port(redis, redis_port, deadline)

    home = plane.workdir / "argocd-home"
    tmp = plane.workdir / "argocd-tmp"
    home.mkdir()
    tmp.mkdir()
    env = {
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "PATH": os.environ.get("PATH", ""),
        "ARGOCD_GPG_ENABLED": "false",
        "ARGOCD_RECONCILIATION_JITTER": "0",
        "KUBECONFIG": str(plane.kubeconfig),
        # Argo CD's switch for running out of cluster: https://kubernetes.default.svc (the cluster Argo CD
        # runs in) is reached through KUBECONFIG instead of a pod's service-account mount.
        "ARGOCD_FAKE_IN_CLUSTER": "true",
    }
    redis_addr = f"127.0.0.1:{redis_port}"
    repo_server = start_process(
        plane,
        "argocd-repo-server",
        [
            str(argocd),
            "--address=127.0.0.1",
            f"--port={repo_port}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={free_port()}",
            f"--redis={redis_addr}",
            "--disable-tls",
            "--loglevel=warn",
        ],
        env={**env, "ARGOCD_BINARY_NAME": "argocd-repo-server"},
    )
    _wait_port(repo_server, repo_port, deadline)
    controller = start_process(
        plane,
        "argocd-application-controller",
        [
            str(argocd),
            f"--kubeconfig={plane.kubeconfig}",
            f"--namespace={NAMESPACE}",
            f"--redis={redis_addr}",
            f"--repo-server=127.0.0.1:{repo_port}",
            "--repo-server-plaintext",
            f"--metrics-port={free_port()}",
            "--app-resync=30",
            "--self-heal-timeout-seconds=2",
            "--loglevel=warn",
        ],
        env={**env, "ARGOCD_BINARY_NAME": "argocd-application-controller"},
    )
    time.sleep(1.0)
    controller.check_alive()
    return ArgoCD(repo_server=repo_server, controller=controller, redis=redis)
