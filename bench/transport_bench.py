"""The floors under the service's two protocols: bare servers on each HTTP stack, one load generator for all.

    python bench/transport_bench.py [--requests 40000] [--rounds 2]

What issue 29's first target asks of the service (a gRPC miss at least as fast as a REST miss) asked of the
stacks under it, with no service code at all. Every server is one process pinned to core 0 and answers the
same breast-cancer row with the same onnxruntime work (no cache: every request is computed):
- rest-uvicorn: bench/bare_server.py, uvicorn with httptools and uvloop: the stack the REST path runs on;
- rest-envoy: the same ASGI app in pyvoy (Envoy with Python embedded), HTTP/1.1;
- grpc-grpcio: bench/bare_grpc_server.py, grpcio's asyncio server: the stack the gRPC path runs on;
- grpc-grpcio-sync: the same servicer on grpcio's thread-pool server;
- grpc-envoy: the same work as an ASGI app in pyvoy, HTTP/2 by Envoy (bench/bare_asgi_server.py);
- grpc-hypercorn: grpc-envoy's app on hypercorn (pure-Python HTTP/2, uvloop), the one maintained ASGI server
  besides pyvoy whose HTTP/2 carries the trailers gRPC needs;
- grpc-connect-envoy: the same servicer on connect-python, a maintained ASGI gRPC library, in the same Envoy
  (bench/bare_connect_server.py): what grpc-envoy's hand-written framing would cost as a library;
- hybrid: grpc-envoy whose app also runs rest-uvicorn's uvicorn on pyvoy's event loop (hybrid_app): both
  protocols in one process on one loop, each on the faster stack; measured one protocol at a time.
Load: h2load (nghttp2's, tools/setup/h2load.sh) pinned to core 1, the same request `--requests` times over
16 connections with one request in flight on each (inference_bench's c=16): HTTP/1.1 to the REST servers,
HTTP/2 with prior knowledge to the gRPC ones (a gRPC-framed ModelInferRequest, `te: trailers`). One load
generator written in C for every server, so neither the protocol's client nor the load core is what is
measured (ghz, inference_bench's gRPC load, saturates its core at about 4,000 req/s here). Each gRPC server
is first checked with grpcio's own stub (grpc-status OK, both outputs). The others are stopped (SIGSTOP)
while one is measured; a warm-up run precedes each measured one; rounds alternate the order; medians.
Prints req/s, mean latency and server CPU per request (process tree, from /proc), each against
rest-uvicorn's.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import orjson
from inference_bench import (  # the servers and the measuring of inference_bench itself, not copies
    ASGI_VENV,
    MODEL_INFER,
    ROOT,
    SCRATCH,
    SERVER_CORE,
    TABULAR,
    Server,
    _pinned,
    _run_load,
    _stop,
    _tabular_row,
    _wait_grpc,
    _wait_http,
    alone,
    asgi_env,
    start_bare,
    start_bare_grpc,
    start_pyvoy,
)

from inference_service.grpc import inference_pb2 as pb
from inference_service.grpc import inference_pb2_grpc as pb_grpc
from tests.support.processes import free_port

REFERENCE = "rest-uvicorn"
_FINISHED = re.compile(r"finished in [0-9.]+(?:us|ms|s), ([0-9.]+) req/s")
_DONE = re.compile(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded")
_CODES = re.compile(r"status codes: (\d+) 2xx")
_MEAN = re.compile(r"time for request:\s+\S+\s+\S+\s+([0-9.]+)(us|ms|s)\b")


@dataclass(frozen=True)
class Sample:
    rps: float
    mean_ms: float
    cpu_us: float  # the server's CPU per request
    cores: float  # the server's CPU time over the wall time
    client_cores: float  # h2load's, the same way: under 1, the load core was not the limit
    failed: int  # requests not answered 2xx


def _request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=TABULAR)
    tensor = request.inputs.add(name="input", datatype="FP32", shape=[1, 30])
    tensor.contents.fp32_contents.extend(_tabular_row(0))
    return request


def bodies() -> dict[str, Path]:
    """The one REST body (V2 JSON) and the one gRPC message (length-prefixed ModelInferRequest), as files."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    rest, grpc_body = SCRATCH / "transport-rest.json", SCRATCH / "transport-grpc.bin"
    row = _tabular_row(0)
    rest.write_bytes(
        orjson.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": row}]})
    )
    message = _request().SerializeToString()
    grpc_body.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
    return {"rest": rest, "grpc": grpc_body}


def check(server: Server) -> None:
    """Ready, and (gRPC) one ModelInfer through grpcio's stub answers both outputs with status OK."""
    if server.port:
        _wait_http(server, "/v2/health/ready")  # bare_server answers any GET
    if server.grpc_port is None:
        return
    _wait_grpc(server)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        reply = stub.ModelInfer(_request(), timeout=5)
    if [o.name for o in reply.outputs] != ["label", "probabilities"]:
        raise RuntimeError(f"{server.name}: unexpected ModelInfer reply {reply}")


def h2load(server: Server, protocol: str, body: dict[str, Path], requests: int) -> Sample:
    if protocol == "grpc":
        url = f"http://127.0.0.1:{server.grpc_port}/{MODEL_INFER.replace('.ModelInfer', '/ModelInfer')}"
        args = ["-d", str(body["grpc"]), "-H", "content-type: application/grpc", "-H", "te: trailers", url]
    else:
        url = f"http://127.0.0.1:{server.port}/v2/models/{TABULAR}/infer"
        args = ["--h1", "-d", str(body["rest"]), "-H", "content-type: application/json", url]
    cpu, client, wall, out = _run_load(server, ["h2load", "-n", str(requests), "-c", "16", "-m", "1", *args])
    finished, done, codes, mean = (p.search(out) for p in (_FINISHED, _DONE, _CODES, _MEAN))
    if not (finished and done and codes and mean):
        raise RuntimeError(f"h2load's output not understood:\n{out}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[mean.group(2)]
    return Sample(
        rps=float(finished.group(1)),
        mean_ms=float(mean.group(1)) * scale,
        cpu_us=cpu * 1e6 / requests,
        cores=cpu / wall,
        client_cores=client / wall,
        failed=requests - min(int(done.group(1)), int(codes.group(1))),
    )


#: What is measured: a row -> the server (of start_all) and the protocol sent to it.
ROWS = {
    "rest-uvicorn": ("rest-uvicorn", "rest"),
    "rest-envoy": ("rest-envoy", "rest"),
    "grpc-grpcio": ("grpc-grpcio", "grpc"),
    "grpc-grpcio-sync": ("grpc-grpcio-sync", "grpc"),
    "grpc-envoy": ("grpc-envoy", "grpc"),
    "grpc-hypercorn": ("grpc-hypercorn", "grpc"),
    "grpc-connect-envoy": ("grpc-connect-envoy", "grpc"),
    "hybrid: rest-uvicorn": ("hybrid", "rest"),
    "hybrid: grpc-envoy": ("hybrid", "grpc"),
}


def start_hypercorn(name: str, app: str) -> Server:
    """An app of bench/bare_asgi_server.py on hypercorn (one worker, uvloop): HTTP/2 with prior knowledge. Its
    connections are not closed after 1,000 requests (hypercorn's keep_alive_max_requests), as no other
    server's are: h2load does not reconnect, and the rest of a run would fail."""
    env, port = asgi_env(), free_port()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    config = SCRATCH / f"{name}.toml"
    config.write_text("keep_alive_max_requests = 1000000000\n")
    args = [
        str(ASGI_VENV / "bin" / "hypercorn"),
        app,
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "uvloop",
        "--config",
        str(config),
    ]
    proc = subprocess.Popen(
        _pinned(SERVER_CORE, args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return Server(name=name, port=0, proc=proc, grpc_port=port)


def start_all() -> dict[str, Server]:
    servers: dict[str, Server] = {}
    for name, start in (
        ("rest-uvicorn", start_bare),
        ("rest-envoy", lambda: start_pyvoy("rest-envoy", "bare_asgi_server:rest_app", grpc=False)),
        ("grpc-grpcio", start_bare_grpc),
        ("grpc-grpcio-sync", lambda: start_bare_grpc(sync=True)),
        ("grpc-hypercorn", lambda: start_hypercorn("grpc-hypercorn", "bare_asgi_server:grpc_app")),
        (
            "grpc-connect-envoy",
            lambda: start_pyvoy("grpc-connect-envoy", "bare_connect_server:app", grpc=True),
        ),
        ("grpc-envoy", lambda: start_pyvoy("grpc-envoy", "bare_asgi_server:grpc_app", grpc=True)),
        (
            "hybrid",
            lambda: start_pyvoy("hybrid", "bare_asgi_server:hybrid_app", grpc=True, rest_port=free_port()),
        ),
    ):
        try:
            servers[name] = start()
        except BaseException:
            for s in servers.values():
                _stop(s.proc)
            raise
    return servers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40000, help="measured requests per run")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    subprocess.run(["bash", str(ROOT / "tools" / "setup" / "h2load.sh")], check=True)
    body = bodies()
    servers = start_all()
    samples: dict[str, list[Sample]] = {row: [] for row in ROWS}
    try:
        for s in servers.values():
            check(s)
        order = list(ROWS)
        for round_ in range(1, args.rounds + 1):
            for name in order if round_ % 2 else reversed(order):
                server, protocol = servers[ROWS[name][0]], ROWS[name][1]
                with alone(servers, server):
                    h2load(server, protocol, body, max(args.requests // 10, 1000))  # warm-up
                    sample = h2load(server, protocol, body, args.requests)
                samples[name].append(sample)
                print(
                    f"round {round_}  {name:<21} {sample.rps:>8,.0f} req/s  mean {sample.mean_ms:5.2f} ms  "
                    f"server CPU {sample.cpu_us:4.0f} us/req ({sample.cores:.2f} cores, "
                    f"h2load {sample.client_cores:.2f})  "
                    f"failed {sample.failed}",
                    flush=True,
                )
                time.sleep(0.5)
    finally:
        for s in servers.values():
            _stop(s.proc)
    ref = samples[REFERENCE]
    ref_rps = statistics.median(s.rps for s in ref)
    ref_cpu = statistics.median(s.cpu_us for s in ref)
    print(
        f"\n| server | req/s (x {REFERENCE}) | mean ms | server CPU us/req (x {REFERENCE}) | server cores "
        "| h2load cores | failed |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, runs in samples.items():
        rps, cpu = statistics.median(s.rps for s in runs), statistics.median(s.cpu_us for s in runs)
        mean = statistics.median(s.mean_ms for s in runs)
        failed = sum(s.failed for s in runs)
        cores = statistics.median(s.cores for s in runs)
        client = statistics.median(s.client_cores for s in runs)
        print(
            f"| {name} | {rps:,.0f} ({rps / ref_rps:.2f}x) | {mean:.2f} | "
            f"{cpu:.0f} ({cpu / ref_cpu:.2f}x) | {cores:.2f} | {client:.2f} | {failed} |"
        )
    print(f"\n(h2load -c 16 -m 1, {args.requests} requests per run, median of {args.rounds} rounds)")
    return 1 if any(s.failed for runs in samples.values() for s in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
