"""The NetworkPolicy matrix, observed on the node (make node-test; issue 24, point 3).

From every running pod of an environment to every other pod of it on each port its containers declare, to the
cluster DNS (the kube-dns Service: a name looked up over UDP 53, a TCP connection to 53), and from a pod of
each declared peer (its namespace and pod labels) and a pod in a namespace no connection names, into the
environment's pods: one TCP connection each, run from inside the source pod's own container through the
runtime (`ctr tasks exec`, bash's /dev/tcp under coreutils' `timeout`), all at once. A connection that opens,
or is refused (the packet reached the pod; nothing listens on that port), was let through; one that times out
was dropped (kube-network-policies drops what no policy allows).

The expected matrix comes from the spec, not from the generator: policy_check.declared reads overlays/ (the
gate's own reader) and a cell is allowed exactly when the gate's network-isolation rule calls the flow
declared (a connection from the source's component, or from every pod of the namespace, to the
destination's component, on a port its pods declare; a port named grpc only where the connection says grpc).
A pod's component is the workload that owns it (its StatefulSet or its ReplicaSet's Deployment; a service's
canary Deployment, `<service>-canary`, where the overlay declares services.<service>.canary, is the
service's), not its labels, so a pod label that drifted shows as a cut flow. The observed matrix must
equal it.

Mutants, in one environment (MUTANTS_IN, the one with the most flows), each applied to the live namespace,
each to be seen, each restored (the whole matrix is probed again afterwards and must equal the expected):
- the DNS egress rule dropped from the NetworkPolicy that has it: name resolution fails from the pods;
- the ingress rule that admits a peer from another namespace opened to every pod in every namespace: an
  undeclared flow is observed (the other namespace's pod gets in);
- a StatefulSet's pod relabelled so the selectors no longer match it: a declared flow to it is cut.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from policy_check import declared
from testcluster.errors import ClusterTestError
from testcluster.kubeapi import Kube
from testcluster.node import DNS_IP, Node
from testcluster.node_run import Environment, Peer, _inference_image, client_pod, wait_ready
from testcluster.versions import REPO_ROOT

MUTANTS_IN = "stage"
PROBE_TIMEOUT_S = 2
#: The name looked up by the UDP DNS probe (the apiserver's own Service: always there).
DNS_NAME = "kubernetes.default.svc.cluster.local."
#: The pods' component label, as the gate reads it (policies/conftest: name_label).
NAME_LABEL = "app.kubernetes.io/name"
OUTSIDER = Peer(namespace="netmatrix-outsider", labels={NAME_LABEL: "netmatrix-outsider"})
OUTSIDER_NAME = "another-namespace"
KUBE_DNS = "kube-dns"
#: A service's canary Deployment (overlay services.<name>.canary) is `<name>-canary`: the service's pods too.
CANARY_SUFFIX = "-canary"
ALLOWED = ("open", "refused", "answered", "not-found")
BLOCKED = ("timeout",)
ATTEMPTS = 3  # probes of a mutant (or of the restored namespace) until the policy agent has seen the change

# Runs in the source pod (bash and coreutils: every image here has them): argument quadruples
# `key kind host port`, all probed at once; one line `key exit-status output` each.
PROBE = r"""
probe() {
  local out rc
  if [ "$2" = dns ]; then
    out=$(timeout "$T" getent hosts "$3" 2>&1); rc=$?
  else
    out=$(timeout "$T" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$3" "$4" 2>&1); rc=$?
  fi
  echo "$1 $rc ${out//[[:space:]]/_}"
}
T=$1; shift
while [ $# -ge 4 ]; do probe "$1" "$2" "$3" "$4" & shift 4; done
wait
"""


@dataclass(frozen=True, order=True)
class Port:
    number: int
    protocol: str = "TCP"
    name: str = ""

    def label(self) -> str:
        return f"{self.number}/{self.protocol}" + (f" ({self.name})" if self.name else "")


@dataclass(frozen=True)
class Endpoint:
    """A pod the matrix probes from or to (kube-dns: the Service's address, a destination only)."""

    name: str  # as the matrix shows it
    component: str  # the spec's component or peer ("" where the spec names none)
    ours: bool  # in the environment's namespace
    address: str
    ports: tuple[Port, ...] = ()
    container: str = ""  # where its probes run (a source only)
    pod: str = ""  # namespace/name


@dataclass(frozen=True, order=True)
class Cell:
    source: str
    target: str
    port: Port


Matrix = dict[Cell, bool]
Observed = dict[Cell, str]


# --- the expected matrix (pure) ----------------------------------------------------------------------------


def declared_flow(spec: dict[str, Any], src: Endpoint, dst: Endpoint, port: Port) -> bool:
    """The gate's declared_flow (policies/conftest/environment/network_isolation.rego) for one cell."""
    if not dst.component or port not in dst.ports:
        return False
    froms = {src.component, declared.EVERY_POD} if src.ours else {src.component}
    wanted = {
        (str(c["from"]), str(c["to"]))
        for c in spec["connections"]
        if port.name != "grpc" or c.get("grpc", False)
    }
    return any((f, dst.component) in wanted for f in froms)


def cells(sources: Iterable[Endpoint], destinations: Iterable[Endpoint]) -> list[Cell]:
    """Every (source, destination, port) that involves the environment's pods, a pod never to itself."""
    found: list[Cell] = []
    for src in sources:
        for dst in destinations:
            if src.name == dst.name or not (src.ours or dst.ours):
                continue
            found.extend(Cell(src.name, dst.name, port) for port in dst.ports)
    return found


def expected_matrix(spec: dict[str, Any], sources: list[Endpoint], destinations: list[Endpoint]) -> Matrix:
    by_name = {e.name: e for e in [*sources, *destinations]}
    return {
        cell: declared_flow(spec, by_name[cell.source], by_name[cell.target], cell.port)
        for cell in cells(sources, destinations)
    }


def canaries(env: str, overlays: Path = REPO_ROOT / "overlays") -> set[str]:
    """The services whose overlay declares a canary (overlays/<env>.yaml services.<name>.canary)."""
    overlay = yaml.safe_load((overlays / f"{env}.yaml").read_text(encoding="utf-8")) or {}
    return {
        str(name)
        for name, service in (overlay.get("services") or {}).items()
        if (service or {}).get("canary")
    }


def component_of(owner: str, spec: dict[str, Any], canaried: set[str]) -> str:
    """The spec's component of the pods of workload `owner` (itself where the spec has no such component)."""
    if owner in spec["components"]:
        return owner
    return next((s for s in sorted(canaried) if owner == f"{s}{CANARY_SUFFIX}"), owner)


def dns_endpoint(spec: dict[str, Any]) -> Endpoint:
    """The cluster DNS as the spec names it (peer kube-dns: its ports), at the kube-dns Service's address."""
    peer = spec["peers"][KUBE_DNS]
    ports = tuple(sorted(Port(int(p["port"]), str(p["protocol"])) for p in peer["ports"]))
    return Endpoint(name=KUBE_DNS, component=KUBE_DNS, ours=False, address=DNS_IP, ports=ports)


# --- reading the probes and showing the matrix (pure) -------------------------------------------------------


def outcome(kind: str, status: int, output: str) -> str:
    """What one probe saw: open / refused / answered / not-found (let through), timeout (dropped), or an
    error (neither: the probe itself failed)."""
    if status == 0:
        return "answered" if kind == "dns" else "open"
    if status == 124:
        return "timeout"
    if kind == "tcp" and "refused" in output.lower():
        return "refused"
    if kind == "dns" and status == 2:
        return "not-found"
    return f"error (exit {status}: {output[:120]})"


def allowed(seen: str) -> bool | None:
    """True: let through; False: dropped; None: the probe failed."""
    if seen in ALLOWED:
        return True
    if seen in BLOCKED:
        return False
    return None


def differences(env: str, expected: Matrix, observed: Observed) -> list[str]:
    """One line per cell where what was observed is not what the spec declares."""
    found = []
    for cell in sorted(expected):
        seen = observed.get(cell, "not probed")
        if allowed(seen) != expected[cell]:
            want = "allow" if expected[cell] else "deny"
            found.append(
                f"{env}: {cell.source} -> {cell.target}:{cell.port.label()}: declared {want}, observed {seen}"
            )
    return found


def _verdict(want: bool | None, seen: str | None) -> str:
    if want is None:
        return "-"
    got = allowed(seen) if seen is not None else None
    text = "allow" if got else "deny"
    if got is None:
        return "ERROR!"
    if got != want:
        return text.upper() + "!"
    return text + ("*" if seen == "refused" else "")


def format_matrix(
    env: str, sources: list[Endpoint], destinations: list[Endpoint], expected: Matrix, observed: Observed
) -> str:
    """Rows: sources; columns: destination:port (numbered, listed first); each cell the observed verdict,
    upper case with `!` where it differs from the declared one."""
    columns = [(dst.name, port) for dst in destinations for port in dst.ports]
    lines = [
        f"{env}: the NetworkPolicy matrix, observed (allow / deny = as declared; ALLOW! / DENY! = observed, "
        "the opposite declared; allow* = reached, nothing listens; - = not probed)",
        "  destinations:",
    ]
    width = len(str(len(columns)))
    name_width = max(len(d.name) for d in destinations)
    for i, (name, port) in enumerate(columns, 1):
        lines.append(f"  {i:>{width}}  {name:<{name_width}}  {port.label()}")
    row_width = max(len(s.name) for s in sources)
    cell_width = max(6, width)
    header = " ".join(f"{i:>{cell_width}}" for i in range(1, len(columns) + 1))
    lines.append(f"  {'source':<{row_width}}  {header}")
    for src in sources:
        row = []
        for name, port in columns:
            cell = Cell(src.name, name, port)
            row.append(f"{_verdict(expected.get(cell), observed.get(cell)):>{cell_width}}")
        lines.append(f"  {src.name:<{row_width}}  {' '.join(row)}")
    return "\n".join(lines)


# --- mutants of the live namespace (their edits pure) -------------------------------------------------------


def _dns_peer(peer: dict[str, Any]) -> bool:
    ns = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
    pods = (peer.get("podSelector") or {}).get("matchLabels") or {}
    return ns.get("kubernetes.io/metadata.name") == "kube-system" and pods.get("k8s-app") == KUBE_DNS


def without_dns_egress(policy: dict[str, Any]) -> dict[str, Any] | None:
    """The NetworkPolicy with its DNS egress rules dropped; None if it has none."""
    egress = policy.get("spec", {}).get("egress") or []
    kept = [r for r in egress if not any(_dns_peer(p) for p in r.get("to") or [])]
    if len(kept) == len(egress):
        return None
    mutated = copy.deepcopy(policy)
    mutated["spec"]["egress"] = kept
    return mutated


def widened(policy: dict[str, Any]) -> dict[str, Any] | None:
    """The NetworkPolicy with each ingress rule that admits pods of another namespace opened to every pod of
    every namespace (its ports kept); None if it has no such rule."""
    ingress = policy.get("spec", {}).get("ingress") or []
    if not any("namespaceSelector" in p for r in ingress for p in r.get("from") or []):
        return None
    mutated = copy.deepcopy(policy)
    for rule in mutated["spec"]["ingress"]:
        if any("namespaceSelector" in p for p in rule.get("from") or []):
            rule["from"] = [{"namespaceSelector": {}}]
    return mutated


@dataclass
class Mutant:
    what: str
    apply: Callable[[], None]
    restore: Callable[[], None]
    #: the cells that show the mutant, given the expected and the observed matrix
    seen: Callable[[Matrix, Observed], list[Cell]]


# --- the live part -----------------------------------------------------------------------------------------


def _running_container(pod: dict[str, Any]) -> str:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if "running" in (status.get("state") or {}) and status.get("containerID"):
            return str(status["containerID"])
    return ""


def _ports(pod: dict[str, Any]) -> tuple[Port, ...]:
    return tuple(
        sorted(
            Port(int(p["containerPort"]), str(p.get("protocol", "TCP")), str(p.get("name", "")))
            for c in pod["spec"]["containers"]
            for p in c.get("ports") or []
        )
    )


def _owner(kube: Kube, pod: dict[str, Any]) -> tuple[str, str]:
    """(kind, name) of the workload that owns the pod: its StatefulSet, or its ReplicaSet's Deployment."""
    refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")]
    if not refs:
        return "Pod", str(pod["metadata"]["name"])
    ref = refs[0]
    if ref["kind"] == "ReplicaSet":
        rs = kube.get("apps/v1", "ReplicaSet", pod["metadata"]["namespace"], ref["name"]) or {}
        for owner in rs.get("metadata", {}).get("ownerReferences") or []:
            if owner.get("controller"):
                return str(owner["kind"]), str(owner["name"])
    return str(ref["kind"]), str(ref["name"])


def environment_pods(kube: Kube, env: Environment, spec: dict[str, Any]) -> list[Endpoint]:
    """The environment's running pods, each with its owner's component."""
    canaried = canaries(env.name)
    found = []
    for pod in kube.list("v1", "Pod", env.namespace):
        container = _running_container(pod)
        ip = pod.get("status", {}).get("podIP")
        if pod["metadata"].get("deletionTimestamp") or not container or not ip:
            continue
        kind, owner = _owner(kube, pod)
        name = str(pod["metadata"]["name"])
        short = f"{owner}-{name.rsplit('-', 1)[-1]}" if kind == "Deployment" else name
        found.append(
            Endpoint(
                name=short,
                component=component_of(owner, spec, canaried),
                ours=True,
                address=str(ip),
                ports=_ports(pod),
                container=container,
                pod=f"{env.namespace}/{name}" + ("" if kind == "Deployment" else f" {kind}"),
            )
        )
    return sorted(found, key=lambda e: e.name)


def peer_pods(kube: Kube, n: Node, spec: dict[str, Any], image: str, timeout_s: float = 90) -> list[Endpoint]:
    """A sleeping pod with the identity of each declared peer (kube-dns aside: CoreDNS itself) and one in a
    namespace no connection names; created once, kept for the next environments."""
    wanted: dict[str, tuple[str, Peer]] = {}
    for name, peer in sorted(spec["peers"].items()):
        if name != KUBE_DNS:
            labels = {str(k): str(v) for k, v in peer["podLabels"].items()}
            wanted[name] = (name, Peer(namespace=str(peer["namespace"]), labels=labels))
    wanted[OUTSIDER_NAME] = ("", OUTSIDER)
    for name, (_, peer) in wanted.items():
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": peer.namespace}})
        pod = client_pod(peer, image, ["sleep", "infinity"], f"netmatrix-{name}")
        pod["spec"]["restartPolicy"] = "Always"
        applied = kube.apply(pod)
        if not applied.ok:
            raise ClusterTestError(f"the matrix's {name} pod: {applied.message}")
    deadline = time.monotonic() + timeout_s
    while True:
        n.check_alive()
        found = []
        for name, (component, peer) in wanted.items():
            pod = kube.get("v1", "Pod", peer.namespace, f"netmatrix-{name}") or {}
            container, ip = _running_container(pod), pod.get("status", {}).get("podIP")
            if container and ip:
                where = f"{peer.namespace}/netmatrix-{name}"
                found.append(Endpoint(name, component, False, str(ip), (), container, where))
        if len(found) == len(wanted):
            return found
        if time.monotonic() > deadline:
            raise ClusterTestError(f"the matrix's peer pods not running after {timeout_s:.0f} s")
        time.sleep(0.3)


def _probe_from(n: Node, src: Endpoint, targets: list[tuple[Cell, Endpoint]]) -> Observed:
    args, keys = [], {}
    for i, (cell, dst) in enumerate(targets):
        kind = "tcp"
        if cell.port.protocol == "UDP":
            if dst.name != KUBE_DNS:
                raise ClusterTestError(f"{dst.name}:{cell.port.label()}: no probe for UDP other than DNS")
            kind = "dns"
        keys[str(i)] = (cell, kind)
        host = DNS_NAME if kind == "dns" else dst.address
        args += [str(i), kind, host, str(cell.port.number)]
    out = n.exec_in(src.container, ["bash", "-c", PROBE, "probe", str(PROBE_TIMEOUT_S), *args])
    seen: Observed = {}
    for line in out.splitlines():
        key, status, output = [*line.split(" ", 2), ""][:3]
        if key in keys and status.lstrip("-").isdigit():
            cell, kind = keys[key]
            seen[cell] = outcome(kind, int(status), output)
    return seen


def observe(
    n: Node, sources: list[Endpoint], destinations: list[Endpoint], wanted: Iterable[Cell]
) -> Observed:
    """Every cell in `wanted`, probed from inside its source pod, all sources at once."""
    by_name = {d.name: d for d in destinations}
    per_source: dict[str, list[tuple[Cell, Endpoint]]] = {}
    for cell in wanted:
        per_source.setdefault(cell.source, []).append((cell, by_name[cell.target]))
    runs = [(s, per_source[s.name]) for s in sources if s.name in per_source]
    observed: Observed = {}
    with ThreadPoolExecutor(max_workers=max(1, len(runs))) as pool:
        for seen in pool.map(lambda run: _probe_from(n, *run), runs):
            observed.update(seen)
    return observed


def _policy(env: Environment, edit: Callable[[dict[str, Any]], dict[str, Any] | None]) -> tuple[Any, Any]:
    for obj in env.of_kind("NetworkPolicy"):
        mutated = edit(obj)
        if mutated is not None:
            return obj, mutated
    return None, None


def mutants(kube: Kube, n: Node, env: Environment, pods: list[Endpoint], expected: Matrix) -> list[Mutant]:
    """The three mutants of the live namespace; a line for what cannot be mutated is raised."""

    def applier(obj: dict[str, Any]) -> Callable[[], None]:
        def apply() -> None:
            applied = kube.apply(obj)
            if not applied.ok:
                raise ClusterTestError(
                    f"{env.name}: NetworkPolicy {obj['metadata']['name']}: {applied.message}"
                )

        return apply

    found = []
    original, mutated = _policy(env, without_dns_egress)
    if original is None:
        raise ClusterTestError(f"{env.name}: no NetworkPolicy allows DNS egress to mutate")

    def dns_cut(want: Matrix, seen: Observed) -> list[Cell]:
        return [c for c in want if c.target == KUBE_DNS and want[c] and allowed(seen.get(c, "")) is False]

    found.append(
        Mutant(
            f"DNS egress dropped from NetworkPolicy {original['metadata']['name']}",
            applier(mutated),
            applier(original),
            dns_cut,
        )
    )
    original, mutated = _policy(env, widened)
    if original is None:
        raise ClusterTestError(f"{env.name}: no NetworkPolicy admits another namespace's pods to widen")

    def undeclared(want: Matrix, seen: Observed) -> list[Cell]:
        return [c for c in want if not want[c] and allowed(seen.get(c, "")) is True]

    found.append(
        Mutant(
            f"NetworkPolicy {original['metadata']['name']}: its ingress from another namespace opened to all",
            applier(mutated),
            applier(original),
            undeclared,
        )
    )
    reached = {c.target for c in expected if expected[c] and any(p.name == c.source for p in pods)}
    target = next((p for p in pods if p.pod.endswith(" StatefulSet") and p.name in reached), None)
    if target is None:
        raise ClusterTestError(f"{env.name}: no StatefulSet pod that a declared flow reaches, to mislabel")
    namespace, name = target.pod.split()[0].split("/")
    pod = kube.get("v1", "Pod", namespace, name) or {}
    label = pod.get("metadata", {}).get("labels", {}).get(NAME_LABEL)

    def relabel(value: str | None) -> Callable[[], None]:
        def apply() -> None:
            kube.patch("v1", "Pod", namespace, name, {"metadata": {"labels": {NAME_LABEL: value}}})

        return apply

    def restore() -> None:
        relabel(label)()
        wait_ready(kube, env, n)

    def cut(want: Matrix, seen: Observed) -> list[Cell]:
        return [c for c in want if c.target == target.name and want[c] and allowed(seen.get(c, "")) is False]

    found.append(
        Mutant(
            f"pod {name} relabelled {NAME_LABEL}={label}-mislabelled",
            relabel(f"{label}-mislabelled"),
            restore,
            cut,
        )
    )
    return found


def check(kube: Kube, n: Node, env: Environment, *, with_mutants: bool) -> list[str]:
    """The matrix of `env` (and, with_mutants, the three mutants); what failed, one line each."""
    started = time.monotonic()
    spec = declared.for_environment(REPO_ROOT / "overlays", env.name)
    pods = environment_pods(kube, env, spec)
    peers = peer_pods(kube, n, spec, _inference_image(env))
    sources = [*pods, *peers]
    destinations = [*pods, dns_endpoint(spec)]
    expected = expected_matrix(spec, sources, destinations)
    observed = observe(n, sources, destinations, expected)
    print(format_matrix(env.name, sources, destinations, expected, observed), flush=True)
    for endpoint in sources:
        print(f"    {endpoint.name}: {endpoint.pod} ({endpoint.component or 'no component'})")
    failures = differences(env.name, expected, observed)
    allowed_n = sum(expected.values())
    verdict = "observed = declared" if not failures else f"{len(failures)} cells differ"
    print(
        f"  {env.name}: {len(expected)} cells probed ({allowed_n} declared allowed, "
        f"{len(expected) - allowed_n} denied): {verdict} in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    if with_mutants and not failures:
        failures += _run_mutants(kube, n, env, sources, destinations, pods, expected)
    return failures


def _run_mutants(
    kube: Kube,
    n: Node,
    env: Environment,
    sources: list[Endpoint],
    destinations: list[Endpoint],
    pods: list[Endpoint],
    expected: Matrix,
) -> list[str]:
    failures = []
    started = time.monotonic()
    for mutant in mutants(kube, n, env, pods, expected):
        shown: list[Cell] = []
        try:
            mutant.apply()
            for _ in range(ATTEMPTS):
                time.sleep(0.5)
                shown = mutant.seen(expected, observe(n, sources, destinations, expected))
                if shown:
                    break
        finally:
            mutant.restore()
        if shown:
            first = shown[0]
            print(
                f"  {env.name}: mutant seen: {mutant.what}: {len(shown)} cells changed, e.g. "
                f"{first.source} -> {first.target}:{first.port.label()} now "
                f"{'allowed' if not expected[first] else 'denied'}",
                flush=True,
            )
        else:
            failures.append(f"{env.name}: mutant not seen: {mutant.what}: the observed matrix did not change")
    lines: list[str] = []
    for _ in range(ATTEMPTS):
        time.sleep(0.5)
        lines = differences(env.name, expected, observe(n, sources, destinations, expected))
        if not lines:
            break
    failures += [f"after the mutants were restored: {line}" for line in lines]
    print(
        f"  {env.name}: mutants restored, the matrix observed = declared again "
        f"({time.monotonic() - started:.1f} s for the mutants)"
        if not lines
        else f"  {env.name}: the matrix differs after the mutants were restored",
        flush=True,
    )
    return failures
