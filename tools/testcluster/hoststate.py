"""What a node leaves on the machine: a snapshot of the host state a kubelet node touches, and the difference.

Read from the kernel's own views (/proc/self/mountinfo, the cgroup file systems, `ip link`, `iptables-save`,
/run/netns) and the fixed paths a kubelet, containerd and the CNI plugins write to, independently of the
node's own bookkeeping, so the node test can say exactly what a run left behind (make node-test checks it
after teardown; tests/tools/testcluster/test_node.py checks it again from outside)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Paths outside the node's own folder that a kubelet, containerd or the CNI plugins create.
FIXED_PATHS = (
    "/run/containerd",
    "/var/lib/cni",
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/run/secrets",
    "/etc/cni",
    "/opt/containerd",
    "/var/run/nri",
)
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
    "net/ipv4/conf/all/route_localnet",
    "net/ipv4/vs/conntrack",
)


def _lines(argv: list[str]) -> list[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.stdout.splitlines() if done.returncode == 0 else []


def mounts() -> frozenset[str]:
    return frozenset(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())


def cgroups(depth: int = 2) -> frozenset[str]:
    """Every cgroup folder down to `depth` levels in each hierarchy (kubepods and its children are there)."""
    found = set()
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else ():
        base = hierarchy.resolve()
        for root, dirs, _ in os.walk(base):
            level = Path(root).relative_to(base).parts
            if len(level) >= depth:
                dirs[:] = []
            for d in dirs:
                found.add(str(Path(root, d)))
    return frozenset(found)


def links() -> frozenset[str]:
    return frozenset(line.split(":")[1].strip().split("@")[0] for line in _lines(["ip", "-o", "link"]))


#: A table's own chains: iptables (nf_tables backend) makes them when a table is first used, empty and
#: accepting; they are no node's, so they are not counted (rules in them are, see rules()).
BUILT_IN_CHAINS = frozenset({"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"})


def chains() -> frozenset[str]:
    """Every user-defined iptables and ip6tables chain, as family/table/chain."""
    found = set()
    for tool in ("iptables-save", "ip6tables-save"):
        table = ""
        for line in _lines([tool]):
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":") and line[1:].split()[0] not in BUILT_IN_CHAINS:
                found.add(f"{tool.removesuffix('-save')}/{table}/{line[1:].split()[0]}")
    return frozenset(found)


def rules() -> frozenset[str]:
    """Every rule of every table (so a rule left in a built-in chain shows too)."""
    return frozenset(
        line
        for tool in ("iptables-save", "ip6tables-save")
        for line in _lines([tool])
        if line.startswith("-A")
    )


def netns() -> frozenset[str]:
    folder = Path("/run/netns")
    return frozenset(p.name for p in folder.iterdir()) if folder.is_dir() else frozenset()


def paths() -> frozenset[str]:
    return frozenset(p for p in FIXED_PATHS if os.path.lexists(p))


def sysctls() -> dict[str, str]:
    found = {}
    for name in SYSCTLS:
        path = Path("/proc/sys") / name
        if path.exists():
            found[name] = path.read_text().strip()
    return found


@dataclass(frozen=True)
class HostState:
    mounts: frozenset[str]
    cgroups: frozenset[str]
    links: frozenset[str]
    chains: frozenset[str]
    rules: frozenset[str]
    netns: frozenset[str]
    paths: frozenset[str]
    sysctls: dict[str, str]

    @classmethod
    def now(cls) -> HostState:
        return cls(mounts(), cgroups(), links(), chains(), rules(), netns(), paths(), sysctls())

    def left_since(self, before: HostState) -> list[str]:
        """What exists now that did not before (and sysctls that changed), one line each."""
        found = []
        for what in ("mounts", "cgroups", "links", "chains", "rules", "netns", "paths"):
            for item in sorted(getattr(self, what) - getattr(before, what)):
                found.append(f"{what[:-1] if what != 'netns' else what}: {item}")
        for name, value in sorted(before.sysctls.items()):
            if self.sysctls.get(name) != value:
                found.append(f"sysctl: {name} is {self.sysctls.get(name)}, was {value}")
        return found
