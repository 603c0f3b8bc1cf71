"""The boot check runs the inference Deployment as its manifest says and fails when the manifest is wrong."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testcluster.apply import Manifest, load_folder
from testcluster.boot import Environment, Objects, boot_environment, environment, hosts_file
from testcluster.errors import ClusterTestError
from testcluster.termination import terminate
from tests.support.manifests import first

from .conftest import Docs


def config(docs: Docs) -> dict[str, Any]:
    data: dict[str, Any] = first(docs, "ConfigMap", "inference-config")["data"]
    return data


def first_manifest(env: Environment, deployment: str) -> Manifest:
    return env.objects.by_kind["Deployment"][deployment]


def test_dev_boots_redis_and_the_service() -> None:
    booted, failures = boot_environment(load_folder(Path(__file__).resolve().parents[3] / "dist" / "dev"))
    assert failures == []
    assert booted == ["StatefulSet redis", "Deployment inference"]


def test_an_image_digest_no_build_made_fails_with_one_line(
    mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]],
) -> None:
    unknown = "sha256:" + "0" * 64

    def foreign(docs: Docs) -> None:
        c = first(docs, "Deployment", "inference")["spec"]["template"]["spec"]["containers"][0]
        c["image"] = c["image"].split("@")[0] + "@" + unknown

    _, folder = mutant("dev", foreign)
    with pytest.raises(ClusterTestError) as caught:
        boot_environment(load_folder(folder))
    message = str(caught.value)
    assert "\n" not in message and unknown in message
    assert "no image built by `make image` has this digest" in message


def test_a_model_version_the_image_lacks_never_becomes_ready(
    mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]],
) -> None:
    _, folder = mutant("dev", lambda docs: config(docs).__setitem__("INFERENCE_MODELS", "breast-cancer:99"))
    booted, failures = boot_environment(load_folder(folder))
    assert "Deployment inference" not in booted
    assert len(failures) == 1 and "container inference exited" in failures[0], failures
    assert "breast-cancer" in failures[0]


def test_a_declared_grpc_port_must_serve_grpc_health(
    mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]],
) -> None:
    """dev boots with its gRPC health SERVING (test_dev_boots...); with the server off, the port declared in
    the manifest serves nothing and the boot check names it."""
    _, folder = mutant("dev", lambda docs: config(docs).__setitem__("INFERENCE_GRPC_PORT", "0"))
    booted, failures = boot_environment(load_folder(folder))
    assert "Deployment inference" not in booted
    assert len(failures) == 1 and "gRPC health on port 8081 is not SERVING" in failures[0], failures


def test_the_api_keys_file_must_be_where_the_settings_say(
    mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]],
) -> None:
    def move_keys(docs: Docs) -> None:
        config(docs)["INFERENCE_API_KEYS_FILE"] = "/var/run/secrets/elsewhere/api-keys"

    _, folder = mutant("dev", move_keys)
    booted, failures = boot_environment(load_folder(folder))
    assert "Deployment inference" not in booted
    assert any("api-keys" in f or "api_keys" in f for f in failures), failures


def test_the_root_filesystem_is_read_only_as_the_manifest_asks(
    mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]],
) -> None:
    def write_outside_tmp(docs: Docs) -> None:
        c = first(docs, "Deployment", "inference")["spec"]["template"]["spec"]["containers"][0]
        c["command"] = ["sh", "-c", "touch /app/written && exec python -m inference_service"]

    _, folder = mutant("dev", write_outside_tmp)
    booted, failures = boot_environment(load_folder(folder))
    assert "Deployment inference" not in booted
    assert any("Read-only file system" in f for f in failures), failures


def test_the_jwks_and_the_access_policy_must_be_where_the_settings_say(
    mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]],
) -> None:
    """prod takes tokens: its projected identity volume must hold the JWKS where the settings say."""

    def move_jwks(docs: Docs) -> None:
        for name in ("inference", "inference-canary"):
            pod = first(docs, "Deployment", name)["spec"]["template"]["spec"]
            identity = next(v for v in pod["volumes"] if v["name"] == "identity")["projected"]
            identity["sources"][1]["configMap"]["items"][0]["path"] = "jwks/elsewhere.json"

    _, folder = mutant("prod", move_jwks)
    booted, failures = boot_environment(load_folder(folder))
    assert "Deployment inference" not in booted and "Deployment inference-canary" not in booted
    assert failures and all("INFERENCE_OIDC_JWKS_FILE" in f for f in failures), failures


STAGE = Path(__file__).resolve().parents[3] / "dist" / "stage"


def test_stage_boots_both_redis_the_job_worker_and_the_service() -> None:
    """Stage enables jobs: the jobs Redis and the cache both listen on 6379, each in its own pod network."""
    booted, failures = boot_environment(load_folder(STAGE))
    assert failures == []
    assert set(booted) == {
        "StatefulSet jobs-redis",
        "StatefulSet redis",
        "Deployment inference-worker",
        "Deployment inference",
    }


def test_each_redis_service_resolves_to_its_own_pod(tmp_path: Path) -> None:
    manifests = load_folder(STAGE)
    namespace = next(m.obj["metadata"]["namespace"] for m in manifests if m.obj["kind"] == "StatefulSet")
    pods = {"redis": "10.213.0.2", "jobs-redis": "10.213.1.2"}
    path = hosts_file(Objects.of(manifests), namespace, tmp_path / "hosts", pods)
    address = {name: line.split()[0] for line in path.read_text().splitlines() for name in line.split()[1:]}
    assert address["redis"] == address["redis-headless"] == address["redis-0.redis-headless"] == "10.213.0.2"
    assert address["jobs-redis"] == address[f"jobs-redis.{namespace}.svc.cluster.local"] == "10.213.1.2"
    assert address["jobs-redis-0.jobs-redis-headless"] == "10.213.1.2"
    assert address["inference"] == address["inference-worker"] == address["localhost"] == "127.0.0.1"


# Runs inside the pod network (nsenter --net), as the clients a Service routes to the pod: from `start`, a new
# connection with a one-row request every 100 ms, and slow requests (48 long texts to the embedding model)
# 0.8, 0.3 and 0 s before `slow_at`, so that one is in flight when SIGTERM comes. One JSON line per request.
ROLLOUT_CLIENT = """
import json, sys, threading, time
import httpx
port, key, until, slow_at = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
base, headers, lock = f"http://127.0.0.1:{port}", {"X-API-Key": key}, threading.Lock()
row = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": [[0.5] * 30]}]}
def slow_body(n):  # texts of its own for each slow request: none is answered from the cache
    texts = [f"request {n} sentence number {i} " + "word " * 120 for i in range(48)]
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [48], "data": texts}]}

def send(kind, path, body, timeout):
    sent = time.time()
    try:
        status = httpx.post(base + path, json=body, headers=headers, timeout=timeout).status_code
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    with lock:
        print(json.dumps({"kind": kind, "sent": sent, "done": time.time(), "status": status}), flush=True)

def slow_one(at):
    body = slow_body(at)
    time.sleep(max(0.0, at - time.time()))
    send("slow", "/v2/models/minilm-embedding/infer", body, 60)

threads = [threading.Thread(target=slow_one, args=(slow_at - lead,)) for lead in (0.0, 0.3, 0.8)]
for thread in threads:
    thread.start()
while time.time() < until:
    send("row", "/v2/models/breast-cancer/infer", row, 5)
    time.sleep(0.1)
for thread in threads:
    thread.join()
"""


def test_a_rollout_serves_clients_until_the_endpoint_is_gone_and_drains_in_flight_requests() -> None:
    """Issue 26 point 6, in the boot sandbox: dev's inference pod is deleted the kubelet's way (its preStop
    hook, SIGTERM, SIGKILL at the grace period's end) while clients keep coming. Every request sent before
    SIGTERM, that is while the endpoint may still be listed (the hook lasts two readiness periods), succeeds;
    a request in flight at SIGTERM completes; the container exits on its own within the grace period."""
    manifests = load_folder(Path(__file__).resolve().parents[3] / "dist" / "dev")
    with environment(manifests) as env:
        assert env.failures == []
        deployment = first_manifest(env, "inference")
        spec = deployment.obj["spec"]["template"]["spec"]
        container = next(c for c in spec["containers"] if c["name"] == "inference")
        period = container["readinessProbe"].get("periodSeconds", 10)
        assert container["lifecycle"]["preStop"]["sleep"]["seconds"] >= 2 * period
        key = env.objects.secret("inference-api-keys", "test")["api-keys"]
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
        started, problem = env.boot(deployment)
        try:
            assert problem is None, problem
            (running,) = started
            hook_s = float(container["lifecycle"]["preStop"]["sleep"]["seconds"])
            now = time.time()
            until, slow_at = now + 2 + hook_s + 4, now + 2 + hook_s - 0.2  # last slow one: SIGTERM - 0.2 s
            argv = [str(port), key, str(until), str(slow_at)]
            client = subprocess.Popen(
                ["nsenter", f"--net={env.net.ns}", "--", sys.executable, "-c", ROLLOUT_CLIENT, *argv],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(2)  # serving before the deletion
            ended = terminate(spec, container, running)
            out, _ = client.communicate(timeout=120)
        finally:
            for r in started:
                r.stop()
    lines = [json.loads(line) for line in out.splitlines()]
    before = [r for r in lines if r["kind"] == "row" and r["sent"] < ended.sigterm_at - 0.2]
    during_hook = [r for r in before if r["sent"] >= ended.deleted_at]
    # requests throughout the hook, from its first second to its last (one a second at least, on a busy host)
    assert len(during_hook) >= hook_s, (len(during_hook), ended)
    assert min(r["sent"] for r in during_hook) < ended.deleted_at + 1.5, ended
    assert max(r["sent"] for r in during_hook) > ended.sigterm_at - 1.5, ended
    assert [r for r in before if r["status"] != 200] == [], ended
    slow = [r for r in lines if r["kind"] == "slow"]
    # three slow requests sent 1.0, 0.5 and 0.2 s before SIGTERM: however fast the host computes them, one is
    # in flight when it comes, and all of them complete
    assert any(r["sent"] < ended.sigterm_at < r["done"] for r in slow), (slow, ended)
    assert [r["status"] for r in slow] == [200, 200, 200], slow
    assert not ended.killed and ended.exited_at - ended.deleted_at < spec["terminationGracePeriodSeconds"]
    assert ended.exit_code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), ended
