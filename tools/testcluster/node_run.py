"""`python -m testcluster.node_run [--env ENV ...] [--keep]`: the node test (make node-test).

A control plane with kube-scheduler and one real node (testcluster.node): each environment of dist/ is applied
in Argo CD's order with the operator stand-ins of the Argo CD test (testcluster.standins), a wave once the
waves before it are healthy; its pods pull the images `make image` built by the digests dist/ names, and the
test waits until every pod is Ready as the kubelet reports it. Then, from a client pod with the ingress
controller's identity (namespace ingress-nginx, pod label app.kubernetes.io/name=ingress-nginx: the peer every
environment's NetworkPolicy admits), through the Service's cluster DNS name: an inference request answered as
onnxruntime answers it here, the same request answered from Redis by a fresh pod (the first pod deleted: its
local cache goes with it), and, where the environment has a worker, a job submitted and its result read back.
Then the NetworkPolicy matrix, observed from inside the pods and compared with the flows the spec declares,
and, in stage, its three mutants (testcluster.node_matrix); then the faults (testcluster.node_faults): the
Redis container SIGKILLed under load, and an inference pod deleted mid-load.

Node capacity: one 2-CPU node cannot hold every environment's requests, so CPU and memory *requests* of every
pod template are divided by REQUEST_SCALE (printed); limits, images, security contexts, env, args, probes and
volumes are applied as dist/ has them. Maximum scale stays proven by the cluster test (make cluster-test).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from policy_check import declared
from testcluster.apply import Manifest, install_crds, kinds_in, load_folder, sync_waves
from testcluster.controlplane import control_plane
from testcluster.errors import ClusterTestError
from testcluster.kubeapi import ApiError, Kube
from testcluster.node import Node, memory_report, node
from testcluster.standins import StandInLoop, StandIns
from testcluster.versions import REPO_ROOT

REQUEST_SCALE = 4  # CPU and memory requests are divided by this (limits untouched)
ENVIRONMENTS = ("dev", "stage", "prod")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
INGRESS_PEER = "ingress-controller"  # the declared peer the client pod takes the identity of
MODELS = REPO_ROOT / "build" / "models"
READY_TIMEOUT_S = 300.0
_UNITS: dict[str, Fraction | int] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "m": Fraction(1, 1000),
}


def quantity(text: str) -> Fraction:
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            return Fraction(text[: -len(suffix)]) * Fraction(_UNITS[suffix])
    return Fraction(text)


def scaled(value: str, resource: str) -> str:
    amount = quantity(value) / REQUEST_SCALE
    if resource == "cpu":
        return f"{max(1, int(amount * 1000))}m"
    return f"{max(1, int(amount / 2**10))}Ki"


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec: dict[str, Any] | None = None
    if obj.get("kind") == "Pod":
        spec = obj.get("spec")
    elif obj.get("kind") in WORKLOADS:
        spec = obj.get("spec", {}).get("template", {}).get("spec")
    return spec


def scale_requests(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy with every container's CPU and memory requests divided by REQUEST_SCALE; nothing else."""
    copied = copy.deepcopy(obj)
    spec = pod_spec(copied)
    for container in (spec or {}).get("containers", []) + (spec or {}).get("initContainers", []):
        requests = container.get("resources", {}).get("requests") or {}
        for resource in ("cpu", "memory"):
            if resource in requests:
                requests[resource] = scaled(str(requests[resource]), resource)
    return copied


def image_references(folders: list[Path]) -> set[str]:
    found = set()
    for folder in folders:
        for manifest in load_folder(folder):
            spec = pod_spec(manifest.obj) or {}
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                found.add(str(container["image"]))
    return found


@dataclass
class Environment:
    name: str
    namespace: str
    manifests: list[Manifest]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m.obj for m in self.manifests if m.obj.get("kind") == kind]


def apply_environment(kube: Kube, folder: Path, n: Node) -> Environment:
    """Apply the environment wave by wave, as Argo CD syncs it: a wave starts once the waves before it are
    healthy (claims Bound, workloads Ready); the caller waits for the last one. Applying everything at once
    would start the Deployments while their claim is still unbound; kube-scheduler then parks their pods as
    unschedulable and may not retry them for up to five minutes after the claim binds (seen in CI: stage's
    inference pods, 300 s)."""
    waves = sync_waves(load_folder(folder))
    manifests = [m for wave in waves for m in wave]
    namespace = next(m.obj["metadata"]["name"] for m in manifests if m.obj["kind"] == "Namespace")
    env = Environment(name=folder.name, namespace=namespace, manifests=manifests)
    for i, wave in enumerate(waves):
        if i:
            wait_ready(kube, env, n)
        for manifest in wave:
            applied = kube.apply(scale_requests(manifest.obj))
            if not applied.ok:
                raise ClusterTestError(f"{manifest.label}: rejected: {applied.message}")
    return env


def _pod_problems(kube: Kube, namespace: str) -> list[str]:
    problems = []
    for pod in kube.list("v1", "Pod", namespace):
        name = pod["metadata"]["name"]
        conditions = {c["type"]: c for c in pod.get("status", {}).get("conditions") or []}
        if conditions.get("Ready", {}).get("status") == "True":
            continue
        reasons = []
        for status in (pod.get("status", {}).get("containerStatuses") or []) + (
            pod.get("status", {}).get("initContainerStatuses") or []
        ):
            state: dict[str, Any] = next(iter((status.get("state") or {}).values()), {})
            reasons.append(f"{status['name']}: {state.get('reason', '')} {state.get('message', '')}".strip())
        scheduled = conditions.get("PodScheduled", {})
        if scheduled.get("status") == "False":
            reasons.append(f"unscheduled: {scheduled.get('message', '')}")
        problems.append(f"pod {name} not Ready ({'; '.join(reasons) or pod['status'].get('phase')})")
    return problems


def wait_ready(kube: Kube, env: Environment, n: Node, timeout_s: float = READY_TIMEOUT_S) -> list[str]:
    """Wait until every workload has all its pods and every pod is Ready (the kubelet's condition)."""
    deadline = time.monotonic() + timeout_s
    while True:
        n.check_alive()
        pending = []
        for kind in ("Deployment", "StatefulSet"):
            for obj in kube.list("apps/v1", kind, env.namespace):
                want = int(obj["spec"].get("replicas", 1))
                ready = int(obj.get("status", {}).get("readyReplicas") or 0)
                if ready < want:
                    pending.append(f"{kind} {obj['metadata']['name']} {ready}/{want} Ready")
        for pvc in kube.list("v1", "PersistentVolumeClaim", env.namespace):
            if pvc.get("status", {}).get("phase") != "Bound":  # named in the timeout's message
                pending.append(
                    f"PersistentVolumeClaim {pvc['metadata']['name']} {pvc['status'].get('phase')}"
                )
        problems = _pod_problems(kube, env.namespace)
        if not pending and not problems:
            return sorted(p["metadata"]["name"] for p in kube.list("v1", "Pod", env.namespace))
        if time.monotonic() > deadline:
            raise ClusterTestError(
                f"{env.name}: not every pod Ready after {timeout_s:.0f} s: {'; '.join(pending + problems)}"
            )
        time.sleep(1.0)


# Runs in the client pod (the inference image's Python): one JSON line per step.
CLIENT = """
import json, socket, sys, time, urllib.error, urllib.request
service, port, key, calls = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
base = f"http://{service}:{port}"

def call(method, path, body=None):
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode(errors="replace")

print(json.dumps({"step": "resolve", "address": socket.gethostbyname(service)}), flush=True)
for step, model, body in calls:
    if step == "infer":
        status, _, answer = call("POST", f"/v2/models/{model}/infer", body)
        print(json.dumps({"step": step, "model": model, "status": status, "body": answer}), flush=True)
    elif step == "job":
        status, headers, job = call("POST", f"/v2/models/{model}/jobs", body)
        location = {k.lower(): v for k, v in headers.items()}.get("location", "")
        for _ in range(120):
            if not location:
                break
            _, _, job = call("GET", location)
            if isinstance(job, dict) and job.get("status") in ("done", "failed"):
                break
            time.sleep(0.5)
        print(json.dumps({"step": step, "model": model, "status": status, "job": job}), flush=True)
"""


@dataclass(frozen=True)
class Peer:
    namespace: str
    labels: dict[str, str]


def declared_peer(env: str, name: str = INGRESS_PEER) -> Peer:
    """A peer as the spec declares it (overlays/, read by the gate's own reader, never the generator)."""
    peer = declared.for_environment(REPO_ROOT / "overlays", env)["peers"][name]
    return Peer(
        namespace=str(peer["namespace"]), labels={str(k): str(v) for k, v in peer["podLabels"].items()}
    )


def client_pod(peer: Peer, image: str, command: list[str], name: str) -> dict[str, Any]:
    """A restricted pod with a peer's identity (its namespace and pod labels) that runs `command` once."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": peer.namespace, "labels": peer.labels},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "client",
                    "image": image,
                    "command": command,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "64Mi"},
                        "limits": {"memory": "256Mi"},
                    },
                }
            ],
        },
    }


def run_client(
    kube: Kube,
    n: Node,
    peer: Peer,
    image: str,
    args: list[str],
    name: str,
    timeout_s: float = 120,
    script: str = CLIENT,
) -> list[dict[str, Any]]:
    """A pod with a peer's identity (its namespace and pod labels) runs `script` (CLIENT); its JSON lines."""
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": peer.namespace}})
    applied = kube.apply(client_pod(peer, image, ["python", "-c", script, *args], name))
    if not applied.ok:
        raise ClusterTestError(f"client pod {name}: {applied.message}")
    deadline = time.monotonic() + timeout_s
    phase = ""
    while time.monotonic() < deadline:
        n.check_alive()
        got = kube.get("v1", "Pod", peer.namespace, name) or {}
        phase = got.get("status", {}).get("phase", "")
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    log = kube.client.get(f"/api/v1/namespaces/{peer.namespace}/pods/{name}/log")
    kube.client.delete(f"/api/v1/namespaces/{peer.namespace}/pods/{name}", params={"gracePeriodSeconds": "0"})
    if phase != "Succeeded":
        raise ClusterTestError(f"client pod {name}: {phase or 'not finished'}; its log: {log.text[-1500:]}")
    return [json.loads(line) for line in log.text.splitlines() if line.startswith("{")]


def _service_port(env: Environment, service: str) -> int:
    svc = next(s for s in env.of_kind("Service") if s["metadata"]["name"] == service)
    return int(svc["spec"]["ports"][0]["port"])


def _api_key(kube: Kube, namespace: str) -> str:
    import base64

    secret = kube.get("v1", "Secret", namespace, "inference-api-keys")
    if secret is None:
        raise ClusterTestError(
            f"{namespace}: no Secret inference-api-keys (the External Secrets stand-in makes it)"
        )
    return base64.b64decode(secret["data"]["api-keys"]).decode()


def _expected(row: list[float]) -> dict[str, Any]:
    """What onnxruntime answers here for breast-cancer version 1 (the version every environment serves)."""
    session = ort.InferenceSession(str(MODELS / "breast-cancer" / "1" / "model.onnx"))
    labels, probabilities = session.run(None, {"input": np.asarray([row], dtype=np.float32)})
    return {"label": labels.tolist(), "probabilities": probabilities.ravel().tolist()}


def _matches(body: dict[str, Any], expected: dict[str, Any]) -> bool:
    outputs = {o["name"]: o["data"] for o in body.get("outputs", [])}
    return outputs.get("label") == expected["label"] and bool(
        np.allclose(outputs.get("probabilities", []), expected["probabilities"], rtol=1e-6)
    )


def _restart_inference(kube: Kube, n: Node, env: Environment) -> None:
    """Delete the inference Deployment's pods and wait for their replacements (an empty local cache)."""
    pods = kube.list("v1", "Pod", env.namespace, labelSelector="app.kubernetes.io/name=inference")
    for pod in pods:
        kube.client.delete(
            f"/api/v1/namespaces/{env.namespace}/pods/{pod['metadata']['name']}",
            params={"gracePeriodSeconds": "0"},
        )
    gone = {p["metadata"]["name"] for p in pods}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        now = kube.list("v1", "Pod", env.namespace, labelSelector="app.kubernetes.io/name=inference")
        if not gone & {p["metadata"]["name"] for p in now}:
            break
        time.sleep(0.5)
    wait_ready(kube, env, n)


def redis_stat(kube: Kube, n: Node, namespace: str, pod: str, stat: str) -> int:
    """A counter of `INFO stats` of the Redis container of `pod`, read through the runtime with redis-cli."""
    obj = kube.get("v1", "Pod", namespace, pod) or {}
    container = next(
        (
            s["containerID"]
            for s in obj.get("status", {}).get("containerStatuses") or []
            if s["name"] == "redis"
        ),
        None,
    )
    if container is None:
        raise ClusterTestError(f"{namespace}/{pod}: no running redis container")
    script = 'REDISCLI_AUTH="$(cat /var/run/secrets/redis/password)" redis-cli -p 6379 info stats'
    for line in n.exec_in(container, ["sh", "-c", script]).splitlines():
        if line.startswith(f"{stat}:"):
            return int(line.split(":", 1)[1])
    raise ClusterTestError(f"{namespace}/{pod}: redis-cli info stats has no {stat}")


TABULAR = "breast-cancer"  # served by every environment at version 1; answers checked against onnxruntime
CACHED = (
    "minilm-embedding"  # the model whose results go to the Redis tier (the tabular one is cheaper to compute)
)


def _inference_image(env: Environment) -> str:
    return str(
        next(
            c["image"]
            for d in env.of_kind("Deployment")
            for c in d["spec"]["template"]["spec"]["containers"]
            if c["image"].split("@")[0].endswith("/mlplatform-inference")
        )
    )


def _answer(lines: list[dict[str, Any]], step: str, model: str) -> dict[str, Any]:
    return next(x for x in lines if x["step"] == step and x["model"] == model)


def check_environment(kube: Kube, n: Node, env: Environment) -> list[str]:
    """The requests through the Service from the client pod; what failed, one line each."""
    failures = []
    image = _inference_image(env)
    peer = declared_peer(env.name)
    service = f"inference.{env.namespace}.svc.cluster.local"
    row = [round(0.05 * i + 0.5, 3) for i in range(30)]
    tabular = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": [row]}]}
    text = f"the node test of {env.name} asks for an embedding"
    embedding = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]}
    expected = _expected(row)
    base = [service, str(_service_port(env, "inference")), _api_key(kube, env.namespace)]
    calls = [("infer", TABULAR, tabular), ("infer", CACHED, embedding)]
    first = run_client(kube, n, peer, image, [*base, json.dumps(calls)], f"client-{env.name}-1")
    resolved = next(x for x in first if x["step"] == "resolve")["address"]
    print(f"  {env.name}: {service} resolves to {resolved} through cluster DNS")
    answer = _answer(first, "infer", TABULAR)
    if answer["status"] != 200 or not _matches(answer["body"], expected):
        failures.append(f"{env.name}: {TABULAR} through the Service: {answer}, expected {expected}")
    else:
        print(f"  {env.name}: {TABULAR} through the Service = onnxruntime's answer {expected['label']}")
    computed = _answer(first, "infer", CACHED)
    # Redis tier: a fresh pod (no local cache) answers the same request from the Redis pod (a Redis hit).
    _restart_inference(kube, n, env)
    hits_before = redis_stat(kube, n, env.namespace, "redis-0", "keyspace_hits")
    again = run_client(kube, n, peer, image, [*base, json.dumps(calls[1:])], f"client-{env.name}-2")
    cached = _answer(again, "infer", CACHED)
    hits = redis_stat(kube, n, env.namespace, "redis-0", "keyspace_hits") - hits_before
    if computed["status"] != 200 or cached != computed or hits < 1:
        failures.append(f"{env.name}: the Redis cache path: {cached['status']}, Redis keyspace hits {hits}")
    else:
        print(
            f"  {env.name}: a fresh inference pod answered {CACHED} from the Redis pod ({hits} keyspace hit)"
        )
    if any(d["metadata"]["name"] == "inference-worker" for d in env.of_kind("Deployment")):
        job = _answer(
            run_client(
                kube, n, peer, image, [*base, json.dumps([("job", TABULAR, tabular)])], f"client-{env.name}-3"
            ),
            "job",
            TABULAR,
        )
        result = job["job"].get("result") if isinstance(job["job"], dict) else None
        if job["status"] != 202 or job["job"].get("status") != "done" or not _matches(result or {}, expected):
            failures.append(f"{env.name}: job round trip: {job}")
        else:
            print(
                f"  {env.name}: a job submitted through the Service ran on the worker; "
                "its result = onnxruntime's"
            )
    return failures


def run_environments(args: argparse.Namespace, folders: list[Path]) -> list[str]:
    """Control plane, node, each environment in turn; the failures of the checks."""
    failures: list[str] = []
    apiserver_args = ("--kubelet-preferred-address-types=InternalIP",)
    with (
        control_plane(keep=args.keep, apiserver_args=apiserver_args) as plane,
        plane.client(timeout=60) as http,
    ):
        kube = Kube(http)
        install_crds(kube, kinds_in(args.dist))
        namespaces = {
            m.obj["metadata"]["name"] for f in folders for m in load_folder(f) if m.obj["kind"] == "Namespace"
        }
        with node(plane, image_references(folders), keep=args.keep) as n:
            standins = StandIns(kube, namespaces, volume_root=n.workdir / "volumes")
            with StandInLoop(standins) as loop:
                for folder in folders:
                    started = time.monotonic()
                    try:
                        env = apply_environment(kube, folder, n)
                        pods = wait_ready(kube, env, n)
                    except ClusterTestError as exc:  # a stand-in that kept failing explains a timeout
                        raise ClusterTestError(
                            f"{exc}; operator stand-ins: {loop.error or 'no error'}"
                        ) from None
                    took = time.monotonic() - started
                    print(
                        f"{env.name}: {len(pods)} pods Ready in {took:.1f} s: {', '.join(pods)}", flush=True
                    )
                    if not args.no_checks:
                        from testcluster import node_matrix  # it imports this module
                        from testcluster.node_faults import check_faults  # imports this module

                        mutants = env.name == node_matrix.MUTANTS_IN
                        for failure in [
                            *check_environment(kube, n, env),
                            *node_matrix.check(kube, n, env, with_mutants=mutants),
                            *check_faults(kube, n, env),
                        ]:
                            print(f"FAIL {failure}", flush=True)
                            failures.append(failure)
                    if loop.error:
                        raise ClusterTestError(f"operator stand-ins: {loop.error}")
                print(f"node memory: {memory_report(n)}", flush=True)
                if args.wait_for_interrupt:
                    print("waiting for SIGINT", flush=True)
                    while True:
                        n.check_alive()
                        time.sleep(1)
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testcluster.node_run", description=__doc__)
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "dist")
    parser.add_argument("--env", action="append", choices=ENVIRONMENTS, help="environments (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the node's and control plane's folders")
    parser.add_argument("--no-checks", action="store_true", help="only wait for the pods to be Ready")
    parser.add_argument(
        "--wait-for-interrupt", action="store_true", help="keep the node up until SIGINT (teardown tests)"
    )
    args = parser.parse_args(argv)
    folders = [args.dist / e for e in args.env or ENVIRONMENTS]
    started = time.monotonic()
    print(
        f"node test: CPU and memory requests divided by {REQUEST_SCALE} to fit one 2-CPU node "
        "(limits and everything else as dist/ has them)",
        flush=True,
    )
    try:
        failures = run_environments(args, folders)
    except (ClusterTestError, ApiError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("node test: interrupted; torn down", file=sys.stderr)
        return 130
    print(f"node test: {len(failures)} failures in {time.monotonic() - started:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
