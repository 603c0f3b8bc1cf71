"""Run one container of a pod template as a local process, the way a kubelet would set it up.

Each container gets its own mount namespace with a fresh root: /usr, /etc and /dev from the host (read-only),
the image's content (images.py), and the pod's volumes at their mountPaths; the root is read-only when the
container asks for readOnlyRootFilesystem. It runs as the pod's UID/GID (fsGroup as a supplementary group)
with no capabilities and no_new_privs, with exactly the environment and arguments its manifest gives it.
All containers of a boot check share one network namespace with only a loopback, where every Service name
of the namespace resolves to 127.0.0.1: the declared ports are the real ones, and nothing else is reachable.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from testcluster import processes
from testcluster.errors import ClusterTestError

HOST_DIRS = ("usr", "dev")  # bound read-only into every root
#: What of the host's /etc the binaries need (users, the dynamic loader, alternatives links, CA certificates);
#: the rest of /etc stays empty, so volumes can be mounted under it (Redis' /etc/redis).
HOST_ETC = (
    "passwd",
    "group",
    "nsswitch.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "ssl",
)
HOST_LINKS = ("bin", "sbin", "lib", "lib64")  # merged-/usr symlinks, copied as links
PYTHON_PREFIX = Path(sys.base_prefix)  # the venv's base interpreter lives here; bound at the same path


@dataclass(frozen=True)
class Mount:
    target: str  # path inside the container
    source: Path
    read_only: bool
    size: str | None = None  # a tmpfs instead of a bind (emptyDir with sizeLimit uses a bind to a temp dir)


@dataclass
class Spec:
    name: str
    argv: list[str]
    env: dict[str, str]
    mounts: list[Mount]
    uid: int
    gid: int
    groups: list[int]
    read_only_root: bool
    workdir: str = "/"


class Network:
    """A network namespace with only loopback up, held open by a sleeping process."""

    def __init__(self, hosts_file: Path) -> None:
        self.hosts_file = hosts_file
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c", "ip link set lo up && exec sleep 3600"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        time.sleep(0.1)
        if self.holder.poll() is not None:
            err = self.holder.stderr.read().decode() if self.holder.stderr else ""
            raise ClusterTestError(
                f"cannot create a network namespace for the boot check ({err.strip()}); it needs root "
                "(or CAP_SYS_ADMIN) and util-linux's unshare"
            )

    @property
    def ns(self) -> str:
        return f"/proc/{self.holder.pid}/ns/net"

    def linked(self, index: int) -> tuple[Network, str]:
        """A pod's own network namespace, joined to this one by a veth pair (10.213.<index>.1 here, .2 there),
        and its address: two pods may then listen on the same port, as pods with their own IPs do."""
        pod = Network(self.hosts_file)
        here, there = f"mlp{index}h", f"mlp{index}p"
        subnet = f"10.213.{index}"
        steps = [
            ["nsenter", f"--net={self.ns}", "--", "ip", "link", "add", here, "type", "veth", "peer", there],
            ["nsenter", f"--net={self.ns}", "--", "ip", "link", "set", there, "netns", str(pod.holder.pid)],
            ["nsenter", f"--net={self.ns}", "--", "ip", "addr", "add", f"{subnet}.1/24", "dev", here],
            ["nsenter", f"--net={self.ns}", "--", "ip", "link", "set", here, "up"],
            ["nsenter", f"--net={pod.ns}", "--", "ip", "addr", "add", f"{subnet}.2/24", "dev", there],
            ["nsenter", f"--net={pod.ns}", "--", "ip", "link", "set", there, "up"],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pod.close()
                raise ClusterTestError(
                    f"cannot link a pod network ({shlex.join(step)}): {done.stderr.strip()}"
                )
        return pod, f"{subnet}.2"

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """A command on the host's filesystem inside this network namespace (probes)."""
        return subprocess.run(
            ["nsenter", f"--net={self.ns}", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def close(self) -> None:
        processes.signal_group(self.holder, signal.SIGKILL)
        self.holder.wait()


def _setup_script(spec: Spec, root: Path) -> str:
    q = shlex.quote
    lines = ["set -eu", f"mount -t tmpfs -o size=64m,mode=755 tmpfs {q(str(root))}"]
    for name in HOST_DIRS:
        lines += [
            f"mkdir -p {q(str(root / name))}",
            f"mount --rbind /{name} {q(str(root / name))}",
            f"mount -o remount,bind,ro {q(str(root / name))}",
        ]
    for name in HOST_LINKS:
        link = Path("/") / name
        if link.is_symlink():
            lines.append(f"ln -s {q(str(link.readlink()))} {q(str(root / name))}")
    lines += [f"mkdir -p {q(str(root / 'proc'))}", f"mount -t proc proc {q(str(root / 'proc'))}"]
    etc = [
        Mount(f"/etc/{name}", Path("/etc") / name, read_only=True)
        for name in HOST_ETC
        if (Path("/etc") / name).exists()
    ]
    python = Mount(str(PYTHON_PREFIX), PYTHON_PREFIX, read_only=True)
    for m in [python, *etc, *sorted(spec.mounts, key=lambda m: m.target)]:
        target = root / m.target.lstrip("/")
        if m.source.is_dir():
            lines.append(f"mkdir -p {q(str(target))}")
        else:
            lines += [f"mkdir -p {q(str(target.parent))}", f"touch {q(str(target))}"]
        lines.append(f"mount --bind {q(str(m.source))} {q(str(target))}")
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {q(str(target))}")
    if spec.read_only_root:
        lines.append(f"mount -o remount,ro {q(str(root))}")
    env = [f"{k}={v}" for k, v in sorted(spec.env.items())]
    groups = ",".join(str(g) for g in spec.groups) or "-"
    priv = [
        "setpriv",
        f"--reuid={spec.uid}",
        f"--regid={spec.gid}",
        f"--groups={groups}" if spec.groups else "--clear-groups",
        "--inh-caps=-all",
        "--ambient-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
    ]
    enter = "cd " + q(spec.workdir) + ' && exec "$@"'
    lines.append(
        f"exec chroot {q(str(root))} {shlex.join(priv)} env -i {shlex.join(env)} "
        f"sh -c {q(enter)} sh {shlex.join(spec.argv)}"
    )
    return "\n".join(lines)


@dataclass
class Running:
    spec: Spec
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 6) -> str:
        return processes.log_tail(self.log, lines, width=240) or "(no output)"

    def exec(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """A command inside this container (exec probes): its mounts, root, network, user and environment."""
        env = [f"{k}={v}" for k, v in sorted(self.spec.env.items())]
        cmd = [
            "nsenter",
            f"--target={self.popen.pid}",
            "--mount",
            "--net",
            "--root",
            "--wd=/",
            f"--setuid={self.spec.uid}",
            f"--setgid={self.spec.gid}",
            "--",
            "env",
            "-i",
            *env,
            *argv,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def container_pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        processes.stop_all([self.popen])


def start(spec: Spec, network: Network, workdir: Path) -> Running:
    root = workdir / f"root-{spec.name}"
    root.mkdir(parents=True)
    log = workdir / f"{spec.name}.log"
    hosts = Mount("/etc/hosts", network.hosts_file, read_only=True)
    script = _setup_script(replace(spec, mounts=[*spec.mounts, hosts]), root)
    with log.open("wb") as handle:
        popen = subprocess.Popen(
            [
                "nsenter",
                f"--net={network.ns}",
                "--",
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
            ],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Running(spec=spec, popen=popen, log=log)


@contextlib.contextmanager
def network(hosts_file: Path) -> Iterator[Network]:
    net = Network(hosts_file)
    try:
        yield net
    finally:
        net.close()
