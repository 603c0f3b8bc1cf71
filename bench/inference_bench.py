"""Load benchmark of the inference service against raw onnxruntime and KServe's own Python ModelServer.

    python bench/inference_bench.py [--seconds 3] [--skip-kserve]

Starts, on loopback only: a private redis-server, the service (`python -m inference_service`, one uvicorn
worker, API-key auth and JSON access logs on, as deployed) and KServe 0.21.0's ModelServer serving the same
model.onnx through V2 (installed into its own virtualenv build/kserve-venv by this script; .venv is not
touched).
Drives keep-alive HTTP/1.1 load from an asyncio client in this process at concurrency 1, 16 and 64 for
cache-miss, cache-hit and mixed (80% hits) workloads, each cell bounded by --seconds, and prints req/s,
p50 and p99. The machine has 2 cores shared by client and server: numbers are noisy, compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson

from inference_service.local import RedisProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "build" / "models"
KSERVE_VENV = ROOT / "build" / "kserve-venv"
KSERVE_PINS = ["kserve==0.21.0", "onnxruntime==1.31.1", "numpy==2.4.6"]
TABULAR = "breast-cancer"
EMBEDDING = "minilm-embedding"

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
    ModelServer(workers=1, enable_grpc=False).start([model])
"""


@dataclass
class Cell:
    server: str
    model: str
    workload: str
    concurrency: int
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float  # server process CPU time (all threads) per request: what a request costs


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"content-length:")
        length = (
            int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None])
            if at >= 0
            else 0
        )
        total = end + 4 + length
        if len(self.buffer) >= total:
            status = int(self.buffer[9:12])
            del self.buffer[:total]
            waiter, self.waiter = self.waiter, None
            waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def send(self, data: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        return await self.waiter


def _request(path: str, body: bytes, api_key: str | None) -> bytes:
    auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _drive(
    port: int, make: Callable[[], bytes], concurrency: int, seconds: float
) -> tuple[list[float], int]:
    loop = asyncio.get_running_loop()
    connections = [
        (await loop.create_connection(_Connection, "127.0.0.1", port))[1] for _ in range(concurrency)
    ]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(conn: _Connection) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            data = make()
            started = time.perf_counter()
            try:
                status = await conn.send(data)
            except ConnectionError:
                errors += 1
                return
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors += 1

    await asyncio.gather(*(worker(c) for c in connections))
    for c in connections:
        assert c.transport is not None
        c.transport.close()
    return latencies, errors


def run_cell(
    *,
    server: str,
    model: str,
    workload: str,
    port: int,
    make: Callable[[], bytes],
    concurrency: int,
    seconds: float,
    pid: int,
) -> Cell:
    asyncio.run(_drive(port, make, concurrency, min(0.5, seconds / 4)))  # warm-up, not counted
    started = time.perf_counter()
    cpu_before = _cpu_seconds(pid)
    latencies, errors = asyncio.run(_drive(port, make, concurrency, seconds))
    cpu = _cpu_seconds(pid) - cpu_before
    elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    cell = Cell(
        server=server,
        model=model,
        workload=workload,
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        rps=round(len(latencies) / elapsed, 1),
        p50_ms=round(float(np.percentile(ms, 50)), 3),
        p99_ms=round(float(np.percentile(ms, 99)), 3),
        cpu_us_per_request=round(cpu * 1e6 / max(1, len(latencies)), 1),
    )
    print(
        f"{cell.server:8} {cell.model:17} {cell.workload:6} c={cell.concurrency:<3} {cell.rps:9.1f} req/s"
        f"  p50 {cell.p50_ms:8.3f} ms  p99 {cell.p99_ms:8.3f} ms"
        f"  server CPU {cell.cpu_us_per_request:8.1f} us/req  errors {cell.errors}",
        flush=True,
    )
    return cell


# Workloads


class Tabular:
    def __init__(self, path: str, api_key: str | None) -> None:
        from sklearn.datasets import load_breast_cancer

        self.path = path
        self.api_key = api_key
        self.base = np.asarray(load_breast_cancer().data, dtype=np.float64)
        self.counter = itertools.count()
        self.hot = [self._body(i) for i in range(64)]
        self.random = random.Random(7)

    def _row(self, n: int) -> list[float]:
        row: list[float] = [float(v) for v in self.base[n % len(self.base)]]
        row[0] = 1000.0 + n * 0.01  # unique per n: a never-seen input
        return row

    def _body(self, n: int) -> bytes:
        doc = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": self._row(n)}]}
        return _request(self.path, orjson.dumps(doc), self.api_key)

    def miss(self) -> bytes:
        return self._body(1_000 + next(self.counter))

    def hit(self) -> bytes:
        return self.hot[self.random.randrange(len(self.hot))]

    def mixed(self) -> bytes:
        return self.hit() if self.random.random() < 0.8 else self.miss()


class Text:
    def __init__(self, path: str, api_key: str | None) -> None:
        self.path = path
        self.api_key = api_key
        self.counter = itertools.count()
        self.hot = [self._body(f"cached sentence number {i} about the weather") for i in range(32)]
        self.random = random.Random(11)

    def _body(self, text: str) -> bytes:
        doc = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]}
        return _request(self.path, orjson.dumps(doc), self.api_key)

    def miss(self) -> bytes:
        return self._body(f"a fresh sentence {next(self.counter)} on the topic of {secrets.token_hex(4)}")

    def hit(self) -> bytes:
        return self.hot[self.random.randrange(len(self.hot))]


# Servers


def _wait_http(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                if sock.recv(32)[9:12] == b"200":
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server on port {port} not ready at {path}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ensure_kserve() -> Path:
    python = KSERVE_VENV / "bin" / "python"
    marker = KSERVE_VENV / ".installed"
    if not marker.is_file() or marker.read_text() != "\n".join(KSERVE_PINS):
        print(f"== installing {' '.join(KSERVE_PINS)} into {KSERVE_VENV} (once)", flush=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(KSERVE_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *KSERVE_PINS],
            check=True,
        )
        marker.write_text("\n".join(KSERVE_PINS))
    script = KSERVE_VENV / "kserve_onnx_server.py"
    script.write_text(KSERVE_SERVER)
    return script


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


def _bench_ours(seconds: float, concurrencies: tuple[int, ...]) -> list[Cell]:
    """The service as deployed: auth on, access log on, Redis tier on (for the models that pay for it)."""
    cells: list[Cell] = []
    redis = RedisProcess()
    redis.start()
    api_key = secrets.token_urlsafe(16)
    port = free_port()
    env = {
        **os.environ,
        "INFERENCE_MODEL_REPOSITORY": str(MODELS),
        "INFERENCE_HOST": "127.0.0.1",
        "INFERENCE_PORT": str(port),
        "INFERENCE_REDIS_URL": redis.url,
        "INFERENCE_API_KEYS": api_key,
    }
    ours = subprocess.Popen(
        [sys.executable, "-m", "inference_service"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(port, "/v2/health/ready", ours)
        plan = [
            (
                TABULAR,
                Tabular(f"/v2/models/{TABULAR}/infer", api_key),
                concurrencies,
                ("miss", "hit", "mixed"),
            ),
            (EMBEDDING, Text(f"/v2/models/{EMBEDDING}/infer", api_key), (1, 16), ("miss", "hit")),
        ]
        for model, workloads_of, levels, workloads in plan:
            for c in levels:
                for workload in workloads:
                    cells.append(
                        run_cell(
                            server="ours",
                            model=model,
                            workload=workload,
                            port=port,
                            make=getattr(workloads_of, workload),
                            concurrency=c,
                            seconds=seconds,
                            pid=ours.pid,
                        )
                    )
    finally:
        _stop(ours)
        redis.close()
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--skip-kserve", action="store_true")
    parser.add_argument("--skip-ours", action="store_true", help="only the raw and KServe measurements")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "inference.json")
    args = parser.parse_args()
    if (
        not (MODELS / TABULAR / "1/model.onnx").is_file()
        or not (MODELS / EMBEDDING / "1/model.onnx").is_file()
    ):
        subprocess.run([sys.executable, "-m", "model_build", "--out", str(MODELS)], check=True)
    concurrencies = (1, 16, 64)
    results: dict[str, object] = {"raw_onnxruntime": raw_onnxruntime()}
    cells: list[Cell] = []

    if not args.skip_ours:
        cells.extend(_bench_ours(args.seconds, concurrencies))

    if not args.skip_kserve:
        script = ensure_kserve()
        kport = free_port()
        kserve = subprocess.Popen(
            [str(KSERVE_VENV / "bin" / "python"), str(script), str(MODELS / TABULAR / "1/model.onnx"),
             "--http_port", str(kport), "--grpc_port", str(free_port())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_http(kport, f"/v2/models/{TABULAR}/ready", kserve)
            ktab = Tabular(f"/v2/models/{TABULAR}/infer", None)
            for c in concurrencies:
                cells.append(
                    run_cell(
                        server="kserve",
                        model=TABULAR,
                        workload="miss",
                        port=kport,
                        make=ktab.miss,
                        concurrency=c,
                        seconds=args.seconds,
                        pid=kserve.pid,
                    )
                )
        finally:
            _stop(kserve)

    results["cells"] = [asdict(c) for c in cells]
    summary = _summary(cells)
    results["summary"] = summary
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n" + _table(cells))
    print("\ntargets:")
    for line in summary:
        print("  " + line)
    print(f"\n(results also in {args.out})")
    return 0


def _find(cells: list[Cell], server: str, model: str, workload: str, c: int) -> Cell | None:
    return next(
        (x for x in cells if (x.server, x.model, x.workload, x.concurrency) == (server, model, workload, c)),
        None,
    )


def _summary(cells: list[Cell]) -> list[str]:
    lines = []
    kserve = _find(cells, "kserve", TABULAR, "miss", 16)
    miss = _find(cells, "ours", TABULAR, "miss", 16)
    hit = _find(cells, "ours", TABULAR, "hit", 16)
    if kserve and miss and hit:
        lines.append(f"c16 misses: {miss.rps / kserve.rps:.2f}x KServe V2 req/s (target >= 2x)")
        lines.append(f"c16 hits:   {hit.rps / kserve.rps:.2f}x KServe V2 req/s (target >= 3x)")
    for workload in ("miss", "hit", "mixed"):
        cell = _find(cells, "ours", TABULAR, workload, 16)
        if cell:
            lines.append(f"c16 {workload:5} p99 {cell.p99_ms:.2f} ms for {TABULAR} (target < 10 ms)")
    emiss, ehit = _find(cells, "ours", EMBEDDING, "miss", 1), _find(cells, "ours", EMBEDDING, "hit", 1)
    if emiss and ehit:
        lines.append(
            f"{EMBEDDING} c1: a hit costs {emiss.p50_ms / ehit.p50_ms:.1f}x less than a miss (p50 latency; "
            "target >= 20x)"
        )
    if emiss and ehit:
        ratio = emiss.cpu_us_per_request / max(ehit.cpu_us_per_request, 0.1)
        lines.append(f"{EMBEDDING} c1: a hit costs {ratio:.1f}x less server CPU than a miss (target >= 20x)")
    emiss16, ehit16 = _find(cells, "ours", EMBEDDING, "miss", 16), _find(cells, "ours", EMBEDDING, "hit", 16)
    if emiss16 and ehit16:
        lines.append(f"{EMBEDDING} c16: hits serve {ehit16.rps / emiss16.rps:.1f}x the req/s of misses")
    return lines


def _table(cells: list[Cell]) -> str:
    header = (
        "| server | model | workload | concurrency | req/s | p50 ms | p99 ms | server CPU us/req | errors |"
    )
    rule = "|---|---|---|---:|---:|---:|---:|---:|---:|"
    body = [
        f"| {c.server} | {c.model} | {c.workload} | {c.concurrency} | {c.rps:.0f} "
        f"| {c.p50_ms:.2f} | {c.p99_ms:.2f} | {c.cpu_us_per_request:.0f} | {c.errors} |"
        for c in cells
    ]
    return "\n".join([header, rule, *body])


if __name__ == "__main__":
    sys.exit(main())
