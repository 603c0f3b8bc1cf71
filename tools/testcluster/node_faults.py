"""Faults on the real node (make node-test; issue 24 point 4), run after each environment's checks.

**Redis SIGKILL.** The cache Redis pod's (redis-0) container is killed with SIGKILL through the runtime
(`ctr tasks kill -s SIGKILL` in containerd's k8s.io namespace, as the kernel's OOM killer would end it), while
a load client with the ingress controller's identity calls the Service: a request repeated (answered by the
inference pod's local tier) and fresh ones (computed; the Redis tier is down). Every request must be answered
with 200 and every repeat with the same outputs, some requests must fall inside the outage, the kubelet must
restart the container, and a key written and snapshotted (`SAVE`) before the kill must be back afterwards:
Redis reads it from `dump.rdb` on the pod's PersistentVolume, which outlives the container.

The PVCs are backed by **pre-made PersistentVolumes**, not a local volume provisioner: the provisioner
stand-in (testcluster.standins.StandIns.volumes) writes one hostPath PersistentVolume per claim, in a folder
under the node's temporary folder (`<workdir>/volumes/pv-<namespace>-<claim>`), pre-bound to the claim by
`claimRef`; kube-controller-manager's PV controller completes the binding. So a restarted container (same pod,
same node) mounts the same folder, which is what is checked here (the dump file is looked up on the host).

Finding, printed with the result: the cache's redis.conf (constructs/mlplatform/components/redis.py,
`cache_store`) persists with RDB snapshots only (`appendonly no`, `save 300 100`), so a SIGKILL loses every
write since the last snapshot; a second key written after the `SAVE` shows it. That is the generator's stated
choice for a cache ("RDB snapshots for warm restarts": a lost entry is computed again), not a defect; the jobs
Redis (AOF, `appendfsync always`) is the store that must not lose an acknowledged write.

**An inference pod deleted mid-load.** Where the inference Deployment has at least two Ready pods (stage: its
HorizontalPodAutoscaler's minReplicas; dev has one replica and prod's three come from KEDA, which does not run
here), a load client sends a steady stream of requests, each on a new connection, through the Service, and one
pod is deleted gracefully (its own terminationGracePeriodSeconds). The allowance is derived from the
Deployment and the app (`Drain`): the preStop sleep keeps the pod serving while the endpoint leaves the
EndpointSlice and kube-proxy's rules (PROPAGATION_S at most here; the measured time is printed), then SIGTERM
makes uvicorn finish in-flight requests within INFERENCE_SHUTDOWN_DRAIN_SECONDS, inside the grace period. When
the preStop sleep covers the propagation and the grace period covers preStop + drain, no request may fail.

Latency: a load's first request or two take about a second. kube-network-policies judges a load client pod's
first SYN before its pod cache has the new pod (srcPod "none" in its log), so default-deny drops it and TCP
sends it again after its 1 s initial timeout; every later connection is judged with the pod known.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_service.settings import Settings
from testcluster.errors import ClusterTestError
from testcluster.kubeapi import Kube
from testcluster.node import Node
from testcluster.node_run import (
    CACHED,
    TABULAR,
    Environment,
    Peer,
    _api_key,
    _expected,
    _inference_image,
    _matches,
    _service_port,
    declared_peer,
    run_client,
    wait_ready,
)

REDIS_POD = "redis-0"
REDIS_CLAIM = "data-redis-0"
PROPAGATION_S = 5.0  # bound on endpoint removal -> kube-proxy's rules on this node (measured: well under 2 s)
REDIS_RATE = 6.0  # requests per second
DRAIN_RATE = 8.0  # requests per second (stage's quota: 600 a minute per caller)
LOAD_MAX_S = 60.0  # a load client stops by itself after this long, if it is not stopped before
AFTER_S = 2.0  # the load goes on this long after the fault is over (Redis Ready again, the pod gone)
RESTART_TIMEOUT_S = 45.0

# Runs in the load client pod (the inference image's Python): one JSON line per request, as it completes;
# stops sending at SIGUSR1 (Load.stop) or after spec["seconds"].
LOAD = """
import concurrent.futures, hashlib, json, signal, sys, threading, time, urllib.error, urllib.request
service, port, key, spec = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
base, bodies, lock, stop = f"http://{service}:{port}", spec["bodies"], threading.Lock(), threading.Event()
signal.signal(signal.SIGUSR1, lambda *_: stop.set())

def one(i):
    model, body = bodies[i % len(bodies)]
    request = urllib.request.Request(
        f"{base}/v2/models/{model}/infer", data=json.dumps(body).encode(), method="POST",
        headers={"X-API-Key": key, "Content-Type": "application/json", "Connection": "close"})
    sent, status, error, answer = time.time(), 0, "", None
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, answer = response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        status, error = exc.code, exc.read().decode(errors="replace")[:200]
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:200]
    outputs = answer.get("outputs") if isinstance(answer, dict) else None
    digest = hashlib.sha256(json.dumps(outputs, sort_keys=True).encode()).hexdigest()[:16] if outputs else ""
    line = {"i": i, "body": i % len(bodies), "sent": sent, "ms": round((time.time() - sent) * 1000, 2),
            "status": status, "error": error, "digest": digest}
    if i == 0:
        line["outputs"] = outputs
    with lock:
        print(json.dumps(line), flush=True)

start = time.time()
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    i = 0
    while time.time() - start < spec["seconds"] and not stop.is_set():
        pool.submit(one, i)
        i += 1
        stop.wait(max(0.0, start + i / spec["rate"] - time.time()))
"""


# --- pure logic --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One request of a load client: its index, which body, when it was sent (epoch s), how long it took."""

    i: int
    body: int
    sent: float
    ms: float
    status: int
    error: str
    digest: str

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.digest)


def replies(lines: list[dict[str, Any]]) -> list[Reply]:
    found = [
        Reply(
            i=int(x["i"]),
            body=int(x["body"]),
            sent=float(x["sent"]),
            ms=float(x["ms"]),
            status=int(x["status"]),
            error=str(x["error"]),
            digest=str(x["digest"]),
        )
        for x in lines
        if "i" in x
    ]
    return sorted(found, key=lambda r: r.i)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def between(found: list[Reply], start: float, end: float) -> list[Reply]:
    """The requests in flight at some moment of [start, end]: sent before end, answered after start."""
    return [r for r in found if r.sent <= end and r.sent + r.ms / 1000 >= start]


def inconsistent(found: list[Reply]) -> list[Reply]:
    """Answered requests whose outputs differ from the first answer to the same body."""
    first: dict[int, str] = {}
    odd = []
    for reply in found:
        if not reply.ok:
            continue
        if first.setdefault(reply.body, reply.digest) != reply.digest:
            odd.append(reply)
    return odd


def describe(found: list[Reply]) -> str:
    latencies = [r.ms for r in found]
    failed = [r for r in found if not r.ok]
    return (
        f"{len(found)} requests, {len(failed)} failed, latency p50 {percentile(latencies, 50):.0f} ms, "
        f"p99 {percentile(latencies, 99):.0f} ms, max {max(latencies, default=0):.0f} ms"
    )


@dataclass(frozen=True)
class Persistence:
    """What a redis.conf says about durability."""

    aof: bool
    fsync: str  # appendfsync: always, everysec (Redis's default), no
    save_points: tuple[tuple[int, int], ...]  # (seconds, changes)

    def sigkill_loses(self) -> str:
        if self.aof and self.fsync == "always":
            return "nothing acknowledged (AOF, fsync on every write)"
        if self.aof:
            return f"up to about a second of writes (AOF, appendfsync {self.fsync})"
        if self.save_points:
            points = ", ".join(f"{s} s/{c} changes" for s, c in self.save_points)
            return f"every write since the last RDB snapshot (appendonly no; snapshots after {points})"
        return "everything (no AOF, no snapshots)"


def persistence(conf: str) -> Persistence:
    """Parse the durability lines of a redis.conf (the last occurrence of a directive wins, as in Redis)."""
    aof, fsync = False, "everysec"
    points: tuple[tuple[int, int], ...] = ((3600, 1), (300, 100), (60, 10000))  # Redis 7's default
    for raw in conf.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        directive, args = words[0].lower(), [w.strip("\"'") for w in words[1:]]
        if directive == "appendonly":
            aof = args[:1] == ["yes"]
        elif directive == "appendfsync" and args:
            fsync = args[0]
        elif directive == "save":
            values = [int(a) for a in args if a]
            points = tuple(zip(values[::2], values[1::2], strict=False))
    return Persistence(aof=aof, fsync=fsync, save_points=points)


@dataclass(frozen=True)
class Drain:
    """The settings that decide what a graceful pod deletion may cost its callers."""

    pre_stop_s: float
    grace_s: float
    drain_s: float

    def failure_window(self, propagation_s: float) -> float:
        """Seconds after the deletion during which a request sent through the Service may fail: until
        kube-proxy stops routing to the pod, less the preStop sleep that keeps it serving meanwhile; and the
        whole termination when the grace period cannot cover preStop + the app's drain (in-flight requests
        are then cut by SIGKILL)."""
        if self.grace_s < self.pre_stop_s + self.drain_s:
            return self.grace_s
        return max(0.0, propagation_s - self.pre_stop_s)

    def allowance(self, propagation_s: float) -> str:
        window = self.failure_window(propagation_s)
        if window == 0:
            return (
                f"preStop sleep {self.pre_stop_s:g} s >= endpoint propagation {propagation_s:g} s and "
                f"grace {self.grace_s:g} s >= preStop + drain {self.drain_s:g} s: no request may fail"
            )
        return f"requests sent in the first {window:g} s after the deletion may fail"


def drain_of(deployment: dict[str, Any], config: dict[str, str], default_drain_s: float) -> Drain:
    """The Drain of a Deployment's first container, its app's drain from the ConfigMap or the app default."""
    spec = deployment["spec"]["template"]["spec"]
    hook = (spec["containers"][0].get("lifecycle") or {}).get("preStop") or {}
    pre_stop = float((hook.get("sleep") or {}).get("seconds", 0))
    if "exec" in hook:  # a `sleep N` command
        command = " ".join(hook["exec"].get("command", []))
        found = re.search(r"\bsleep\s+(\d+(?:\.\d+)?)", command)
        pre_stop = float(found.group(1)) if found else 0.0
    drain = float(config.get("INFERENCE_SHUTDOWN_DRAIN_SECONDS", default_drain_s))
    return Drain(
        pre_stop_s=pre_stop, grace_s=float(spec.get("terminationGracePeriodSeconds", 30)), drain_s=drain
    )


def unexcused(found: list[Reply], deleted_at: float, window_s: float) -> list[Reply]:
    """Failed requests not sent within the allowed window after the deletion."""
    return [r for r in found if not r.ok and not deleted_at <= r.sent < deleted_at + window_s]


# --- on the node -------------------------------------------------------------------------------------------


@dataclass
class Load:
    """A load client pod running LOAD in a thread (run_client), started and waited for."""

    kube: Kube
    peer: Peer
    name: str
    future: Future[list[dict[str, Any]]]

    def wait_started(self, node: Node, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        path = f"/api/v1/namespaces/{self.peer.namespace}/pods/{self.name}/log"
        while time.monotonic() < deadline:
            node.check_alive()
            if self.future.done():
                self.future.result()  # raises the client's failure
                return
            response = self.kube.client.get(path)
            if response.status_code == 200 and '"i": ' in response.text:
                return
            time.sleep(0.2)
        raise ClusterTestError(f"load client {self.name}: no answer in {timeout_s:.0f} s")

    def stop(self, node: Node) -> None:
        """Tell the client to stop sending (SIGUSR1 to its process, through the runtime); it exits once its
        requests in flight are answered."""
        status = _container(self.kube, self.peer.namespace, self.name, "client")
        node.exec_in(str(status["containerID"]), ["sh", "-c", "kill -USR1 1"])

    def replies(self) -> list[Reply]:
        return replies(self.future.result())


def _start_load(
    pool: ThreadPoolExecutor, kube: Kube, n: Node, env: Environment, name: str, spec: dict[str, Any]
) -> Load:
    peer = declared_peer(env.name)
    service = f"inference.{env.namespace}.svc.cluster.local"
    spec = {**spec, "seconds": LOAD_MAX_S}
    args = [service, str(_service_port(env, "inference")), _api_key(kube, env.namespace), json.dumps(spec)]
    timeout = LOAD_MAX_S + 90
    future = pool.submit(
        run_client, kube, n, peer, _inference_image(env), args, name, timeout_s=timeout, script=LOAD
    )
    return Load(kube=kube, peer=peer, name=name, future=future)


def _container(kube: Kube, namespace: str, pod: str, name: str) -> dict[str, Any]:
    obj = kube.get("v1", "Pod", namespace, pod) or {}
    for status in obj.get("status", {}).get("containerStatuses") or []:
        if status["name"] == name:
            found: dict[str, Any] = status
            return found
    raise ClusterTestError(f"{namespace}/{pod}: no status for container {name}")


def redis_cli(n: Node, container_id: str, *args: str) -> str:
    """redis-cli in the Redis container (through the runtime), with the pod's password; its output."""
    quoted = " ".join(f"'{a}'" for a in args)
    script = f'REDISCLI_AUTH="$(cat /var/run/secrets/redis/password)" redis-cli -p 6379 {quoted}'
    return n.exec_in(container_id, ["sh", "-c", script]).strip()


def _embedding(text: str) -> list[Any]:
    return [CACHED, {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]}]


def _claim_folder(kube: Kube, namespace: str, claim: str) -> Path:
    pvc = kube.get("v1", "PersistentVolumeClaim", namespace, claim) or {}
    volume = pvc.get("spec", {}).get("volumeName")
    pv = kube.get("v1", "PersistentVolume", None, volume) if volume else None
    path = ((pv or {}).get("spec", {}).get("hostPath") or {}).get("path")
    if not path:
        raise ClusterTestError(f"{namespace}/{claim}: not bound to a hostPath PersistentVolume")
    return Path(path)


def redis_sigkill(kube: Kube, n: Node, env: Environment, pool: ThreadPoolExecutor) -> list[str]:
    """The Redis fault (see the module's docstring); its failures, one line each."""
    ns, label = env.namespace, f"{env.name}: fault redis SIGKILL"
    conf = next(c for c in env.of_kind("ConfigMap") if c["metadata"]["name"] == "redis-config")
    durability = persistence(conf["data"]["redis.conf"])
    before = _container(kube, ns, REDIS_POD, "redis")
    container = str(before["containerID"])
    token = secrets.token_hex(8)
    redis_cli(n, container, "SET", "node-test:saved", token)
    saved = redis_cli(n, container, "SAVE")
    redis_cli(n, container, "SET", "node-test:unsaved", token)
    dump = _claim_folder(kube, ns, REDIS_CLAIM) / "dump.rdb"
    if saved != "OK" or not dump.is_file():
        return [f"{label}: SAVE answered {saved!r}; {dump} {'exists' if dump.exists() else 'is missing'}"]
    count = int(REDIS_RATE * LOAD_MAX_S)
    bodies = [
        _embedding(f"{env.name} fault {token} {i // 2}" if i % 2 else f"{env.name} repeat")
        for i in range(count)
    ]
    load = _start_load(pool, kube, n, env, f"load-{env.name}-redis", {"rate": REDIS_RATE, "bodies": bodies})
    load.wait_started(n)
    killed = time.time()
    n.ctr("tasks", "kill", "-s", "SIGKILL", container.split("://")[-1])
    back = None
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    while time.monotonic() < deadline:
        status = _container(kube, ns, REDIS_POD, "redis")
        if status["restartCount"] > before["restartCount"] and status.get("ready"):
            back = time.time()
            break
        time.sleep(0.2)
    time.sleep(AFTER_S)
    load.stop(n)
    found = load.replies()
    failures = []
    if back is None:
        return [f"{label}: the container was not restarted and Ready in {RESTART_TIMEOUT_S:.0f} s"]
    ended = (status.get("lastState") or {}).get("terminated") or {}
    outage = between(found, killed, back)
    if not outage:
        failures.append(
            f"{label}: no request fell inside the outage ({back - killed:.1f} s); load: {describe(found)}"
        )
    bad = [r for r in found if not r.ok] + inconsistent(found)
    if bad:
        failures.append(f"{label}: requests failed or answered differently: {bad[:3]}")
    restarted = str(status["containerID"])
    after_saved = redis_cli(n, restarted, "GET", "node-test:saved")
    after_unsaved = redis_cli(n, restarted, "GET", "node-test:unsaved")
    if after_saved != token:
        failures.append(f"{label}: the key snapshotted before the kill is {after_saved!r} after the restart")
    print(
        f"  {label}: exit {ended.get('exitCode')} ({ended.get('reason')}), restarted by the kubelet, Ready "
        f"{back - killed:.1f} s after the kill; during the outage {describe(outage)} (local tier or "
        f"computed); whole load {describe(found)}",
        flush=True,
    )
    print(
        f"  {label}: the key written before SAVE is back after the restart (dump.rdb on the PV, {dump}); "
        f"the key written after it: {'kept' if after_unsaved == token else 'lost'}; finding: a SIGKILL "
        f"loses {durability.sigkill_loses()}",
        flush=True,
    )
    return failures


def _endpoint_gone(kube: Kube, namespace: str, pod: str) -> bool:
    for piece in kube.list(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        namespace,
        labelSelector="kubernetes.io/service-name=inference",
    ):
        for endpoint in piece.get("endpoints") or []:
            if (endpoint.get("targetRef") or {}).get("name") == pod and (
                endpoint.get("conditions") or {}
            ).get("ready"):
                return False
    return True


def delete_mid_load(kube: Kube, n: Node, env: Environment, pool: ThreadPoolExecutor) -> list[str]:
    """The pod-deletion fault (see the module's docstring); its failures, one line each."""
    ns, label = env.namespace, f"{env.name}: fault inference pod deleted mid-load"
    deployment = next(d for d in env.of_kind("Deployment") if d["metadata"]["name"] == "inference")
    selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    pods = [
        p["metadata"]["name"]
        for p in kube.list("v1", "Pod", ns, labelSelector=selector)
        if not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
    ]
    if len(pods) < 2:
        print(f"  {label}: skipped, {len(pods)} Ready inference pod (the fault needs two)", flush=True)
        return []
    config = next(c for c in env.of_kind("ConfigMap") if c["metadata"]["name"] == "inference-config")
    drain = drain_of(
        deployment, config["data"], float(Settings.model_fields["shutdown_drain_seconds"].default)
    )
    window = drain.failure_window(PROPAGATION_S)
    row = [round(0.05 * i + 0.5, 3) for i in range(30)]
    tabular = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": [row]}]}
    spec = {"rate": DRAIN_RATE, "bodies": [[TABULAR, tabular]]}
    load = _start_load(pool, kube, n, env, f"load-{env.name}-drain", spec)
    load.wait_started(n)
    victim = pods[0]
    deleted = time.time()
    kube.client.delete(f"/api/v1/namespaces/{ns}/pods/{victim}")  # graceful: the pod's own grace period
    unready = gone = None
    deadline = time.monotonic() + drain.grace_s + 10
    while gone is None and time.monotonic() < deadline and not load.future.done():
        if unready is None and _endpoint_gone(kube, ns, victim):
            unready = time.time()
        if kube.get("v1", "Pod", ns, victim) is None:
            gone = time.time()
        time.sleep(0.1)
    time.sleep(AFTER_S)
    load.stop(n)
    lines = load.future.result()
    found = replies(lines)
    failures = []
    first = next((x for x in lines if x.get("i") == 0), {})
    if not _matches({"outputs": first.get("outputs") or []}, _expected(row)):
        failures.append(f"{label}: the first answer is not onnxruntime's: {first}")
    if gone is None or not found or found[-1].sent < gone:
        failures.append(f"{label}: the load ended before pod {victim} was gone")
    beyond = unexcused(found, deleted, window) + inconsistent(found)
    if beyond:
        failures.append(f"{label}: {len(beyond)} requests failed beyond the allowance: {beyond[:3]}")
    during = [r for r in found if r.sent >= deleted and (gone is None or r.sent <= gone)]
    print(
        f"  {label}: {drain.allowance(PROPAGATION_S)}; pod {victim} out of the Service's endpoints "
        f"{(unready or deleted) - deleted:.1f} s after the delete, gone after "
        f"{(gone or time.time()) - deleted:.1f} s; load {describe(found)}; "
        f"while terminating {describe(during)}",
        flush=True,
    )
    wait_ready(kube, env, n)
    return failures


def check_faults(kube: Kube, n: Node, env: Environment) -> list[str]:
    """Every fault for one environment (after check_environment); the failures, one line each."""
    started = time.monotonic()
    with ThreadPoolExecutor(1, thread_name_prefix="load-client") as pool:
        failures = redis_sigkill(kube, n, env, pool) + delete_mid_load(kube, n, env, pool)
    print(f"  {env.name}: faults took {time.monotonic() - started:.1f} s", flush=True)
    return failures
