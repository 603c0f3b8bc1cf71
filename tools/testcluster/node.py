"""A real single node for a ControlPlane: containerd + runc + the CNI bridge, the kubelet, kube-proxy, CoreDNS
and kube-network-policies, pulling the images `make image` built from a local OCI registry.

Everything the node writes lives in one temporary folder (containerd's root, state and socket, the kubelet's
root, the CNI configuration and IP allocations, the registry's storage, the logs), its bridge has a name of
its own, its cgroups sit under a cgroup root of its own, and its ports are free loopback (or bridge) ports.
What a kubelet node cannot keep apart (kube-proxy's KUBE-* chains, the kubelet's fixed /var/lib/kubelet and
/var/log/containers) makes one node per machine at a time: a lock says so and waits. Teardown runs on failure
and on SIGINT, removes what the run made, restores the sysctls, and reports whatever is still left
(hoststate.HostState): see `node()`.

Two workarounds for this kind of VM (../shared/notes/images-and-node-facts.md):
- CAP_SYS_RESOURCE is not in the bounding set, so containerd runs with `restrict_oom_score_adj = true`;
- the kernel lacks nftables' `queue` expression, so kube-network-policies' own nftables table fails to load;
  its NFQUEUE listener runs, and an iptables chain of this node queues new pod-to-pod connections to it,
  and new DNS queries from the pods to CoreDNS on the node's address. It skips the kubelet's probes (from the
  node's address), as kube-network-policies' own rules do.

CoreDNS runs on the node's address, not in a pod; so that the NetworkPolicies' DNS rules (egress to the pods
`k8s-app: kube-dns` in kube-system) are judged as in a cluster, a Pod object in kube-system with those labels
carries the node's address as its pod IP (`kube-dns-identity`: never scheduled, never run; its status says the
address): kube-network-policies maps DNS packets to it as it maps packets to any pod.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from testcluster import images
from testcluster.controlplane import ControlPlane, Process, binary
from testcluster.errors import ClusterTestError
from testcluster.hoststate import CGROUP_ROOT, HostState
from testcluster.kubeapi import Kube
from testcluster.nodes import start_scheduler
from testcluster.processes import free_port, stop_all

POD_CIDR = "10.244.0.0/24"
NODE_IP = "10.244.0.1"  # the bridge's address: the node's InternalIP, CoreDNS's, the pods' gateway
SERVICE_CIDR = "10.96.0.0/16"  # the control plane's --service-cluster-ip-range
DNS_IP = "10.96.0.10"
NFQUEUE = 100  # the first queue number tried; a queue another process holds is skipped (free_queue)
QUEUES = Path("/proc/net/netfilter/nfnetlink_queue")  # the queues bound now, one line each
CNI_BIN = Path("/usr/lib/cni")
LOCK = Path(tempfile.gettempdir()) / "mlplatform-node.lock"
SETUP_HINT = "run tools/setup/node-tools.sh (make node-test does)"
#: Debian's commands the node runs, and the package that has each.
COMMANDS = {
    "containerd": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "iptables-save": "iptables",
    "umoci": "umoci",
    "skopeo": "skopeo",
    "gcc": "gcc",
    "ip": "iproute2",
    "unshare": "util-linux",
}
PAUSE_C = r"""
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGTERM, stop); signal(SIGINT, stop); signal(SIGCHLD, reap);
  for (;;) pause();
}
"""


def preflight() -> None:
    """Every command and binary the node needs, or one line naming the first missing one and the fix."""
    if os.geteuid() != 0:
        raise ClusterTestError("the node test runs a kubelet and containerd: run it as root")
    for command, package in COMMANDS.items():
        if shutil.which(command) is None:
            raise ClusterTestError(f"{command} is not on PATH; install Debian's {package} ({SETUP_HINT})")
    if not (CNI_BIN / "bridge").is_file():
        raise ClusterTestError(
            f"{CNI_BIN}/bridge is missing; install containernetworking-plugins ({SETUP_HINT})"
        )
    for name in ("kubelet", "kube-proxy", "coredns", "kube-network-policies", "registry", "kube-scheduler"):
        try:
            binary(name)
        except ClusterTestError:
            raise ClusterTestError(f"{name} is not built; {SETUP_HINT}") from None


def run(argv: list[str], what: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise ClusterTestError(f"{what} failed ({' '.join(argv[:3])} ...): {tail}")
    return done


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    with LOCK.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another node test on this machine (lock: {LOCK})", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt, so the `finally` blocks (the teardown) run."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class Node:
    plane: ControlPlane
    workdir: Path
    name: str = ""
    bridge: str = ""
    cgroup_root: str = ""
    registry: str = ""  # host:port of the local registry
    socket: Path = Path()
    processes: list[Process] = field(default_factory=list)
    chain: str = ""
    nfqueue: int = NFQUEUE
    teardown_notes: list[str] = field(default_factory=list)

    def start(self, name: str, args: list[str]) -> Process:
        proc = self.plane.start_process(name, args)
        self.plane.processes.remove(proc)  # stopped by the node's teardown, before the control plane's
        self.processes.append(proc)
        return proc

    def check_alive(self) -> None:
        for proc in self.processes:
            proc.check_alive()
        self.plane.check_alive()

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args], "ctr", check=check)

    def exec_in(self, container_id: str, argv: list[str]) -> str:
        """Run a command in a running container, through the runtime (as the container's user); its output."""
        exec_id = f"node-test-{secrets.token_hex(4)}"
        return self.ctr("tasks", "exec", "--exec-id", exec_id, container_id.split("://")[-1], *argv).stdout


def _wait(what: str, ok: Callable[[], bool], node: Node, timeout_s: float, log: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        node.check_alive()
        if time.monotonic() > deadline:
            where = f"; see {node.workdir / log}" if log else f"; logs in {node.workdir}"
            raise ClusterTestError(f"{what} not ready in {timeout_s:.0f} s{where}")
        time.sleep(0.2)


def _http_ok(url: str) -> Callable[[], bool]:
    def ok() -> bool:
        try:
            return httpx.get(url, timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    return ok


# --- the pieces, in the order they start -------------------------------------------------------------------


def _bridge(node: Node) -> None:
    run(["ip", "link", "add", node.bridge, "type", "bridge"], "creating the bridge")
    run(["ip", "addr", "add", f"{NODE_IP}/24", "dev", node.bridge], "addressing the bridge")
    run(["ip", "link", "set", node.bridge, "up"], "bringing the bridge up")
    # The host reaches ClusterIPs (kube-proxy's DNAT) through the bridge, as a node's own processes do.
    run(["ip", "route", "add", SERVICE_CIDR, "dev", node.bridge, "src", NODE_IP], "routing the service range")


def _start_registry(node: Node) -> None:
    port = free_port()
    folder = node.workdir / "registry"
    folder.mkdir()
    config = folder / "config.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(folder / "data")}},
                "http": {"addr": f"127.0.0.1:{port}", "debug": {"addr": ""}},
            }
        ),
        encoding="utf-8",
    )
    node.start("registry", [str(binary("registry")), "serve", str(config)])
    node.registry = f"127.0.0.1:{port}"
    _wait("the local registry", _http_ok(f"http://{node.registry}/v2/"), node, 30, "registry.log")


def _push(node: Node, layout: Path, repository: str, digest: str) -> None:
    """One image layout (its `latest` tag) into the local registry, digest preserved."""
    run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{layout}:latest",
            f"docker://{node.registry}/{repository}:pushed",
        ],
        f"pushing {layout.name} to the local registry",
    )
    head = httpx.head(
        f"http://{node.registry}/v2/{repository}/manifests/{digest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    if head.status_code != 200:
        raise ClusterTestError(f"the local registry does not serve {repository}@{digest} after the push")


def push_images(node: Node, references: set[str]) -> list[str]:
    """Every image reference (host/repository@sha256:...) dist/ names, from build/images/ into the registry
    under the same repository path; returns the registry hosts they name (containerd mirrors each)."""
    built = images.built()
    hosts = set()
    for reference in sorted(references):
        name, _, digest = reference.partition("@")
        host, _, repository = name.partition("/")
        if digest not in built:
            images.image_for(reference)  # raises the one-line error (run make image / pin / synth)
        _push(node, built[digest], repository, digest)
        hosts.add(host)
    return sorted(hosts)


def _pause_image(node: Node) -> str:
    """A pause image built here (a static C program), pushed to the local registry; its reference."""
    folder = node.workdir / "pause"
    folder.mkdir()
    (folder / "pause.c").write_text(PAUSE_C, encoding="utf-8")
    run(["gcc", "-static", "-Os", "-o", str(folder / "pause"), str(folder / "pause.c")], "compiling pause")
    layout, bundle = folder / "layout", folder / "bundle"
    run(["umoci", "init", "--layout", str(layout)], "umoci init")
    run(["umoci", "new", "--image", f"{layout}:latest"], "umoci new")
    run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)], "umoci unpack")
    shutil.copy2(folder / "pause", bundle / "rootfs" / "pause")
    run(["umoci", "repack", "--image", f"{layout}:latest", str(bundle)], "umoci repack")
    run(
        [
            "umoci",
            "config",
            "--image",
            f"{layout}:latest",
            "--config.entrypoint",
            "/pause",
            "--config.user",
            "65535",
        ],
        "umoci config",
    )
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    _push(node, layout, "mlplatform-test/pause", digest)
    return f"{node.registry}/mlplatform-test/pause@{digest}"


def _start_containerd(node: Node, hosts: list[str], pause: str) -> None:
    folder = node.workdir / "containerd"
    certs = folder / "certs.d"
    # Every host the images name, and the registry itself, resolve to the local registry only: `server` is the
    # registry, so containerd never falls back to the real host.
    for host in [*hosts, node.registry]:
        (certs / host).mkdir(parents=True)
        (certs / host / "hosts.toml").write_text(
            f'server = "http://{node.registry}"\n\n[host."http://{node.registry}"]\n'
            '  capabilities = ["pull", "resolve"]\n',
            encoding="utf-8",
        )
    cni = node.workdir / "cni"
    (cni / "net.d").mkdir(parents=True)
    (cni / "net.d" / "10-node.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "0.4.0",
                "name": "node",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": node.bridge,
                        "isGateway": True,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                            "routes": [{"dst": "10.244.0.0/16"}, {"dst": SERVICE_CIDR}],
                            "dataDir": str(cni / "ipam"),
                        },
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    node.socket = folder / "containerd.sock"
    config = folder / "config.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            version = 2
            root = "{folder / "root"}"
            state = "{folder / "state"}"
            disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
              "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.zfs",
              "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
            [grpc]
              address = "{node.socket}"
            [ttrpc]
              address = "{folder / "containerd.sock.ttrpc"}"
            [metrics]
              address = ""
            [plugins."io.containerd.grpc.v1.cri"]
              sandbox_image = "{pause}"
              restrict_oom_score_adj = true
              enable_selinux = false
              [plugins."io.containerd.grpc.v1.cri".containerd]
                snapshotter = "overlayfs"
                default_runtime_name = "runc"
                [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
                  runtime_type = "io.containerd.runc.v2"
                  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
                    SystemdCgroup = false
              [plugins."io.containerd.grpc.v1.cri".cni]
                bin_dir = "{CNI_BIN}"
                conf_dir = "{cni / "net.d"}"
              [plugins."io.containerd.grpc.v1.cri".registry]
                config_path = "{certs}"
            """
        ),
        encoding="utf-8",
    )
    node.start("containerd", ["containerd", "--config", str(config), "--log-level", "warn"])
    _wait(
        "containerd",
        lambda: node.socket.exists() and node.ctr("version", check=False).returncode == 0,
        node,
        30,
        "containerd.log",
    )


def _start_kubelet(node: Node) -> None:
    folder = node.workdir / "kubelet"
    folder.mkdir()
    for hierarchy in _hierarchies():
        (hierarchy / node.cgroup_root.strip("/")).mkdir(exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                "containerRuntimeEndpoint": f"unix://{node.socket}",
                "cgroupDriver": "cgroupfs",
                "cgroupRoot": node.cgroup_root,
                "failSwapOn": False,
                "failCgroupV1": False,
                "resolvConf": "",
                "clusterDNS": [DNS_IP],
                "clusterDomain": "cluster.local",
                "address": NODE_IP,
                "port": free_port(),
                "readOnlyPort": 0,
                "healthzBindAddress": "127.0.0.1",
                "healthzPort": free_port(),
                "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
                "authorization": {"mode": "AlwaysAllow"},
                "podLogsDir": str(folder / "pod-logs"),
                "serializeImagePulls": False,
                "imageGCHighThresholdPercent": 100,
                "imageGCLowThresholdPercent": 99,
                "evictionHard": {
                    "memory.available": "100Mi",
                    "nodefs.available": "1%",
                    "imagefs.available": "1%",
                },
                "makeIPTablesUtilChains": False,
                "syncFrequency": "10s",
                "fileCheckFrequency": "10s",
            }
        ),
        encoding="utf-8",
    )
    node.start(
        "kubelet",
        [
            str(binary("kubelet")),
            f"--config={config}",
            f"--kubeconfig={node.plane.kubeconfig}",
            f"--root-dir={folder / 'root'}",
            f"--cert-dir={folder / 'pki'}",
            f"--hostname-override={node.name}",
            f"--node-ip={NODE_IP}",
            "--v=0",
        ],
    )


def _start_kube_proxy(node: Node) -> None:
    config = node.workdir / "kube-proxy.yaml"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "clientConnection": {"kubeconfig": str(node.plane.kubeconfig)},
                "mode": "iptables",
                "clusterCIDR": POD_CIDR,
                "hostnameOverride": node.name,
                "healthzBindAddress": f"127.0.0.1:{free_port()}",
                "metricsBindAddress": f"127.0.0.1:{free_port()}",
                # 0 everywhere: kube-proxy leaves the host's conntrack sysctls as they are
                "conntrack": {
                    "maxPerCore": 0,
                    "min": 0,
                    "tcpEstablishedTimeout": "0s",
                    "tcpCloseWaitTimeout": "0s",
                },
                "nodePortAddresses": [f"{NODE_IP}/32"],
                "iptables": {"localhostNodePorts": False},
            }
        ),
        encoding="utf-8",
    )
    node.start("kube-proxy", [str(binary("kube-proxy")), f"--config={config}", "--v=0"])


def _start_coredns(node: Node, pause: str) -> None:
    ready = free_port()
    corefile = node.workdir / "Corefile"
    corefile.write_text(
        textwrap.dedent(
            f"""\
            .:53 {{
                bind {NODE_IP}
                errors
                ready 127.0.0.1:{ready}
                health 127.0.0.1:{free_port()}
                kubernetes cluster.local in-addr.arpa ip6.arpa {{
                    kubeconfig {node.plane.kubeconfig} test
                    pods insecure
                    fallthrough in-addr.arpa ip6.arpa
                }}
                cache 5
            }}
            """
        ),
        encoding="utf-8",
    )
    node.start("coredns", [str(binary("coredns")), "-conf", str(corefile)])
    kube = node.plane
    # the kube-dns Service, selector-less, with an EndpointSlice naming CoreDNS on the node's address
    with kube.client() as http:
        for obj in (
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kube-dns",
                    "namespace": "kube-system",
                    "labels": {"k8s-app": "kube-dns"},
                },
                "spec": {
                    "clusterIP": DNS_IP,
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP"},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    ],
                },
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "kube-dns-node",
                    "namespace": "kube-system",
                    "labels": {"kubernetes.io/service-name": "kube-dns"},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        ):
            from testcluster.kubeapi import Kube

            applied = Kube(http).apply(obj)
            if not applied.ok:
                raise ClusterTestError(f"creating {obj['kind']} kube-system/kube-dns: {applied.message}")
        _dns_identity(Kube(http), pause)
    _wait("CoreDNS", _http_ok(f"http://127.0.0.1:{ready}/ready"), node, 60, "coredns.log")


DNS_IDENTITY = "kube-dns-identity"


def _dns_identity(kube: Kube, pause: str) -> None:
    """The Pod that gives CoreDNS (on the node's address) the kube-dns pod identity NetworkPolicies select:
    labels k8s-app=kube-dns in kube-system, pod IP the node's address. No scheduler has its schedulerName, so
    nothing runs it; its status, written here, is what kube-network-policies reads."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": DNS_IDENTITY, "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {
            "schedulerName": "mlplatform-node-test-none",
            "automountServiceAccountToken": False,
            "containers": [{"name": "coredns", "image": pause}],
        },
    }
    applied = kube.apply(pod)
    if not applied.ok:
        raise ClusterTestError(f"creating Pod kube-system/{DNS_IDENTITY}: {applied.message}")
    status = {"status": {"podIP": NODE_IP, "podIPs": [{"ip": NODE_IP}]}}
    kube.patch("v1", "Pod", "kube-system", DNS_IDENTITY, status, subresource="status")


def bound_queues() -> set[int]:
    """The NFQUEUE numbers some process has bound (the machine's, not only this node's)."""
    text = QUEUES.read_text() if QUEUES.exists() else ""
    return {int(line.split()[0]) for line in text.splitlines() if line.split()}


def free_queue() -> int:
    """The first queue number from NFQUEUE that no process holds: a queue is the machine's, and a listener
    left by another run would judge this node's packets against its own, stale, pods."""
    taken = bound_queues()
    queue = next(q for q in range(NFQUEUE, 65536) if q not in taken)
    if queue != NFQUEUE:
        print(f"NFQUEUE {NFQUEUE} is bound by a process this run did not start; this node uses {queue}")
    return queue


def _start_netpol_agent(node: Node) -> None:
    """kube-network-policies reads only in-cluster configuration: a private mount namespace gets a tmpfs on
    /run/secrets with the admin token and the apiserver's certificate; the environment names the apiserver."""
    made_secrets = not Path("/run/secrets").exists()
    if made_secrets:
        Path("/run/secrets").mkdir()
        node.teardown_notes.append("rmdir:/run/secrets")
    sa = node.workdir / "netpol-sa"
    sa.mkdir()
    (sa / "token").write_text(node.plane.token, encoding="utf-8")
    shutil.copy2(node.plane.workdir / "certs" / "apiserver.crt", sa / "ca.crt")
    (sa / "namespace").write_text("kube-system", encoding="utf-8")
    target = "/run/secrets/kubernetes.io/serviceaccount"
    script = (
        f'mount -t tmpfs tmpfs /run/secrets && mkdir -p {target} && cp {sa}/* {target}/ && exec "$0" "$@"'
    )
    port = node.plane.url.rsplit(":", 1)[1]
    env_prefix = ["env", "KUBERNETES_SERVICE_HOST=127.0.0.1", f"KUBERNETES_SERVICE_PORT={port}"]
    node.nfqueue = free_queue()
    proc = node.start(
        "kube-network-policies",
        [
            *env_prefix,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            str(binary("kube-network-policies")),
            f"--hostname-override={node.name}",
            f"--nfqueue-id={node.nfqueue}",
            "--disable-nri",
            f"--metrics-bind-address=127.0.0.1:{free_port()}",
            "--v=2",
        ],
    )

    def synced() -> bool:
        text = proc.log.read_text(errors="replace") if proc.log.exists() else ""
        return (
            "Syncing nftables rules" in text
        )  # logged after "Caches are synced", just before the queue opens

    def listening() -> bool:
        text = proc.log.read_text(errors="replace") if proc.log.exists() else ""
        failed = [line for line in text.splitlines() if "could not open nfqueue socket" in line]
        if failed:
            why = failed[0].split("error=", 1)[-1]
            raise ClusterTestError(f"kube-network-policies could not bind NFQUEUE {node.nfqueue}: {why}")
        return node.nfqueue in bound_queues()

    _wait("kube-network-policies (caches synced)", synced, node, 60, "kube-network-policies.log")
    _wait("kube-network-policies (its queue bound)", listening, node, 30, "kube-network-policies.log")
    # Queued packets are dropped while nothing listens: the rules go in only now.
    chain = node.chain
    for rule in (
        ["-N", chain],
        ["-A", chain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
        ["-A", chain, "-s", f"{NODE_IP}/32", "-j", "RETURN"],
        ["-A", chain, "-s", POD_CIDR, "-j", "NFQUEUE", "--queue-num", str(node.nfqueue)],
        ["-A", chain, "-d", POD_CIDR, "-j", "NFQUEUE", "--queue-num", str(node.nfqueue)],
        ["-I", "FORWARD", "1", "-j", chain],
        # DNS from the pods to CoreDNS on the node's address (the kube-dns Service's endpoint)
        *(
            [
                "-I",
                "INPUT",
                "1",
                "-i",
                node.bridge,
                "-d",
                f"{NODE_IP}/32",
                "-p",
                proto,
                "--dport",
                "53",
                "-j",
                chain,
            ]
            for proto in ("udp", "tcp")
        ),
    ):
        run(["iptables", "-w", *rule], "adding the NetworkPolicy queue rule")


def _wait_node_ready(node: Node, timeout_s: float = 90) -> None:
    from testcluster.kubeapi import Kube

    def ready() -> bool:
        with node.plane.client(timeout=5.0) as http:
            obj = Kube(http).get("v1", "Node", None, node.name)
        conditions = (obj or {}).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    _wait(f"node {node.name}", ready, node, timeout_s, "kubelet.log")


# --- teardown ----------------------------------------------------------------------------------------------


def _hierarchies() -> list[Path]:
    return sorted(p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink())


def _remove_cgroups(root: str) -> None:
    for hierarchy in _hierarchies():
        top = hierarchy / root.strip("/")
        if not top.is_dir():
            continue
        for folder, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            for _ in range(50):  # a cgroup whose last task just exited may still be busy for a moment
                try:
                    Path(folder).rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


def _remove_chains(node: Node) -> None:
    """kube-proxy's cleanup, then every KUBE-* chain and this node's queue chain, and the jumps to them."""
    run([str(binary("kube-proxy")), "--cleanup"], "kube-proxy --cleanup", check=False)
    for tool in ("iptables", "ip6tables"):
        table = ""
        ours = []
        jumps = []
        for line in run([f"{tool}-save"], f"{tool}-save", check=False).stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                name = line[1:].split()[0]
                if name.startswith("KUBE-") or name == node.chain:
                    ours.append((table, name))
            elif line.startswith("-A") and (" -j KUBE-" in line or f" -j {node.chain}" in line):
                parts = line.split()
                if not (parts[1].startswith("KUBE-") or parts[1] == node.chain):
                    jumps.append((table, parts[1:]))
        for table, rule in jumps:
            run([tool, "-w", "-t", table, "-D", *rule], f"{tool} -D", check=False)
        for table, name in ours:
            run([tool, "-w", "-t", table, "-F", name], f"{tool} -F", check=False)
        for table, name in ours:
            run([tool, "-w", "-t", table, "-X", name], f"{tool} -X", check=False)
    if shutil.which("nft"):
        run(["nft", "delete", "table", "inet", "kube-network-policies"], "nft", check=False)


def _unmount_under(prefixes: list[str]) -> None:
    for _ in range(3):
        points = [
            line.split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if any(line.split()[4].startswith(p) for p in prefixes)
        ]
        if not points:
            return
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def teardown(node: Node, before: HostState) -> list[str]:
    """Stops everything the node started and removes what it made; returns what is left (empty when clean)."""
    kubelet = [p for p in node.processes if p.name == "kubelet"]
    stop_all(p.popen for p in kubelet)
    others = [p for p in node.processes if p.name not in ("kubelet", "containerd", "registry")]
    stop_all(p.popen for p in others)
    if node.socket.exists():
        # Every container and sandbox: killed through the runtime, then deleted, so the shims exit.
        for _ in range(2):
            tasks = [
                line.split()[0] for line in node.ctr("tasks", "ls", "-q", check=False).stdout.splitlines()
            ]
            for task in tasks:
                node.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
            time.sleep(0.5 if tasks else 0)
            for task in tasks:
                node.ctr("tasks", "delete", "-f", task, check=False)
            for container in node.ctr("containers", "ls", "-q", check=False).stdout.split():
                node.ctr("containers", "delete", container, check=False)
    stop_all(p.popen for p in node.processes if p.name in ("containerd", "registry"))
    node.processes.clear()
    # Shims left by a containerd that died name its socket in their command line; the NetworkPolicy agent
    # (in a mount namespace of its own, so no path of the node's folder) names the node.
    for pid in {*_pids_naming(str(node.workdir)), *_pids_naming(f"--hostname-override={node.name}")}:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for name in sorted(HostState.now().netns - before.netns):
        subprocess.run(["umount", f"/run/netns/{name}"], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            Path(f"/run/netns/{name}").unlink()
    _unmount_under([str(node.workdir), "/run/containerd", "/var/lib/kubelet"])
    if node.cgroup_root:
        _remove_cgroups(node.cgroup_root)
    _remove_chains(node)
    if node.bridge:
        subprocess.run(["ip", "link", "delete", node.bridge], capture_output=True, check=False)
    for path in sorted(HostState.now().paths - before.paths):
        shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError):
            Path(path).unlink()
    for name, value in before.sysctls.items():
        target = Path("/proc/sys") / name
        with contextlib.suppress(OSError):
            if target.read_text().strip() != value:
                target.write_text(value)
    return HostState.now().left_since(before)


def _pids_naming(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if text in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(int(proc.name))
    return found


@contextlib.contextmanager
def node(plane: ControlPlane, images_named: set[str], *, keep: bool = False) -> Iterator[Node]:
    """A Ready node, with every image in `images_named` in its registry; torn down after
    the block. Raises ClusterTestError if the teardown leaves anything behind."""
    preflight()
    with machine_lock(), interrupts_raise():
        before = HostState.now()
        suffix = secrets.token_hex(3)
        workdir = Path(tempfile.mkdtemp(prefix="mlplatform-node-"))
        n = Node(
            plane=plane,
            workdir=workdir,
            name=f"node-{suffix}",
            bridge=f"mlpn{suffix}",
            cgroup_root=f"/mlplatform-node-{suffix}",
            chain=f"MLPN-NETPOL-{suffix}".upper(),
        )
        started = time.monotonic()
        left: list[str] = []
        try:
            _bridge(n)
            _start_registry(n)
            hosts = push_images(n, images_named)
            pause = _pause_image(n)
            _start_containerd(n, hosts, pause)
            start_scheduler(plane)
            _start_kubelet(n)
            _start_kube_proxy(n)
            _wait_node_ready(n)
            _start_coredns(n, pause)
            _start_netpol_agent(n)
            print(f"node {n.name} Ready in {time.monotonic() - started:.1f} s ({workdir})", flush=True)
            yield n
        finally:
            left = teardown(n, before)
            if keep:
                print(f"node folder kept: {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        if left:
            raise ClusterTestError("the node's teardown left: " + "; ".join(left))


# --- what it costs ------------------------------------------------------------------------------------------


def _status_kib(pid: int, field_name: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    return 0


def memory_report(node: Node) -> str:
    """The node's memory: its pods (the peak of its memory cgroup, page cache included) and the processes of
    the node and its control plane (the sum of each one's peak RSS: an upper bound of their peak together)."""
    pids = set(_pids_naming(str(node.workdir))) | set(_pids_naming(str(node.plane.workdir)))
    peak_rss = sum(_status_kib(pid, "VmHWM") for pid in pids) // 1024
    rss = sum(_status_kib(pid, "VmRSS") for pid in pids) // 1024
    cgroup = CGROUP_ROOT / "memory" / node.cgroup_root.strip("/")
    pods = "unknown (no cgroup v1 memory hierarchy)"
    with contextlib.suppress(OSError, ValueError):
        pods = f"{int((cgroup / 'memory.max_usage_in_bytes').read_text()) // 2**20} MiB peak"
    return f"pods {pods}; node and control plane processes {rss} MiB RSS now, at most {peak_rss} MiB at peak"
