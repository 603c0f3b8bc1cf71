"""Run one container of a pod template as a local process, the way a kubelet would set it up.

Each container gets its own mount namespace whose root is its image's root filesystem as `make image`
built it (images.py: unpacked by digest), under an overlay of the container's own, with /dev and /proc, and
the pod's volumes at their mountPaths; the root is read-only when the container asks for
readOnlyRootFilesystem. Nothing of the host's filesystem but /dev is visible: the entry point, its
interpreter and libraries are the image's. It runs as the pod's UID/GID (fsGroup as a supplementary group)
with no capabilities and no_new_privs, with exactly the environment and arguments its manifest gives it.
All containers of a boot check share one network namespace with only a loopback, where every Service name
of the namespace resolves to 127.0.0.1: the declared ports are the real ones, and nothing else is reachable.
"""

from __future__ import annotations

import contextlib
import posixpath
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from testcluster import processes
from testcluster.errors import ClusterTestError


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
    rootfs: Path  # the image's unpacked root filesystem (images.py), shared read-only by its containers
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


def in_root(rootfs: Path, target: str, depth: int = 0) -> str:
    """`target` with each symbolic link on its way resolved inside the image's root filesystem, as a container
    runtime resolves mount points (Debian's /var/run is a link to /run: followed on the host, a mount there
    would land on the host's /run)."""
    if depth > 40:
        raise ClusterTestError(f"{target}: too many levels of symbolic links in the image")
    parts = PurePosixPath(posixpath.normpath(target)).parts[1:]
    resolved = PurePosixPath("/")
    for i, part in enumerate(parts):
        candidate = resolved / part
        local = rootfs / str(candidate).lstrip("/")
        if local.is_symlink():
            link = PurePosixPath(str(local.readlink()))
            rest = PurePosixPath(*parts[i + 1 :]) if i + 1 < len(parts) else PurePosixPath()
            joined = (link if link.is_absolute() else resolved / link) / rest
            return in_root(rootfs, posixpath.normpath(str(joined)), depth + 1)
        resolved = candidate
    return str(resolved)


def _setup_script(spec: Spec, root: Path) -> str:
    q = shlex.quote
    upper, work = root.with_name(root.name + "-upper"), root.with_name(root.name + "-work")
    lines = [
        "set -eu",
        f"mkdir -p {q(str(upper))} {q(str(work))}",
        # the image's root filesystem under a writable overlay of this container's own (as a container runtime
        # does): mount points can be made, the image's files stay as built and shared
        f"mount -t overlay overlay -o {q(f'lowerdir={spec.rootfs},upperdir={upper},workdir={work}')} "
        f"{q(str(root))}",
        f"mkdir -p {q(str(root / 'dev'))} {q(str(root / 'proc'))}",
        f"mount --rbind /dev {q(str(root / 'dev'))}",
        f"mount -o remount,bind,ro {q(str(root / 'dev'))}",
        f"mount -t proc proc {q(str(root / 'proc'))}",
    ]
    for m in sorted(spec.mounts, key=lambda m: m.target):
        target = root / in_root(spec.rootfs, m.target).lstrip("/")
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
