"""Same-process A/B of the service's own cost per request: apps built from several source trees (or settings),
driven through ASGI directly, in interleaved batches, on one core.

    python bench/hotpath_ab.py [--kind v2|v1] [--rounds N] [--batch N] NAME[@REF][,INFERENCE_X=VALUE...]...

A companion to inference_bench.py, not a replacement: no HTTP server, no socket and no load generator, so it
measures only what the app does per request (middleware, API-key gate and audit line, access log, parse,
cache, batcher, onnxruntime, encode) for tabular misses, one request at a time. What it adds is precision:
every variant lives in this one process (each tree's modules imported under their own names in turn), and
the variants take turns in batches of requests, so drift of the machine (which moves a separate run by 5% or
more here) lands on all of them alike. Use it to decide whether an idea is worth an inference_bench run.
NAME@REF is the service at git REF (as inference_bench --variant exports it); NAME alone is the work tree.
The settings are the deployed ones of inference_bench (API keys, the access log, to /dev/null here).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import inference_bench as bench
import uvloop

KEY = "bench-key-0123456789abcdef"
SETTINGS = {
    "INFERENCE_MODEL_REPOSITORY": str(bench.MODELS),
    "INFERENCE_MODELS": f"{bench.TABULAR}:1",
    "INFERENCE_API_KEYS": KEY,
    "INFERENCE_ACCESS_LOG": "true",
    "INFERENCE_AUDIT_LOG": os.devnull,
}
OWN_PACKAGES = ("inference_service", "model_build")
DISCARD = open(os.devnull, "w")  # noqa: SIM115 - the access logs write here for the process's life


def build_app(tree: Path, extra: dict[str, str]) -> Any:
    """The app of one source tree: that tree's modules, imported afresh (earlier trees' apps keep theirs)."""
    for name in [m for m in sys.modules if m.split(".")[0] in OWN_PACKAGES]:
        del sys.modules[name]
    sys.path.insert(0, str(tree))
    saved, stdout = dict(os.environ), sys.stdout
    os.environ.update({**SETTINGS, **extra})
    sys.stdout = DISCARD  # the access log writes to the stdout it finds when the app is made
    try:
        return importlib.import_module("inference_service.app").create_app()
    finally:
        sys.stdout = stdout
        sys.path.remove(str(tree))
        os.environ.clear()
        os.environ.update(saved)


async def start(app: Any) -> None:
    """Runs the app's lifespan startup and waits until its models are loaded."""
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    app.bench_lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    message = await outbox.get()
    if message["type"] != "lifespan.startup.complete":
        raise SystemExit(f"app did not start: {message}")
    for _ in range(600):
        if app.state.inference.ready:
            return
        await asyncio.sleep(0.05)
    raise SystemExit("models did not load within 30 s")


def bodies(kind: str) -> tuple[str, Iterator[bytes]]:
    """The path and an endless supply of never-seen tabular bodies (every one a cache miss)."""
    if kind == "v2":
        path, template = f"/v2/models/{bench.TABULAR}/infer", bench.v2_tabular(bench._miss_row(1))
    else:
        path, template = f"/v1/models/{bench.TABULAR}:predict", bench.v1_tabular(bench._miss_row(1))
    return path, (template.replace(b"@N@", b"%d" % n) for n in range(1000, 10**12))


async def drive(app: Any, path: str, supply: Iterator[bytes], count: int) -> float:
    """Microseconds per request over `count` requests, one at a time; every response must be a 200."""
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for _ in range(count):
        body = next(supply)
        request = {"type": "http.request", "body": body, "more_body": False}

        async def receive(request: dict[str, Any] = request) -> dict[str, Any]:
            return request

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8080),
            "headers": [
                (b"host", b"127.0.0.1:8080"),
                (b"content-type", b"application/json"),
                (b"authorization", b"Bearer " + KEY.encode()),
                (b"content-length", b"%d" % len(body)),
            ],
        }
        await app(scope, receive, send)
    elapsed = time.perf_counter() - started
    if set(statuses) != {200}:
        raise SystemExit(f"responses were not all 200: {sorted(set(statuses))}")
    return elapsed / count * 1e6


async def run(args: argparse.Namespace) -> list[str]:
    apps: list[tuple[str, Any]] = []
    for spec in args.variants:
        name, ref, extra = bench.parse_variant(spec)
        tree = bench.export_ref(ref) if ref else bench.ROOT / "apps" / "inference"
        apps.append((name, build_app(tree, extra)))
    for _, app in apps:
        await start(app)
    path, supply = bodies(args.kind)
    for _, app in apps:
        await drive(app, path, supply, args.batch * 2)  # warm-up
    results: dict[str, list[float]] = {name: [] for name, _ in apps}
    for round_ in range(args.rounds):
        for name, app in apps if round_ % 2 == 0 else apps[::-1]:
            results[name].append(await drive(app, path, supply, args.batch))
    first = statistics.median(results[apps[0][0]])
    lines = [f"{args.kind} miss, us per request over {args.rounds} batches of {args.batch} (min / median):"]
    for name, values in results.items():
        median = statistics.median(values)
        lines.append(f"  {name:16s} {min(values):6.1f} / {median:6.1f}   {median / first:5.2f}x the first")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("variants", nargs="+", help="NAME[@REF][,INFERENCE_X=VALUE...]")
    parser.add_argument("--kind", choices=["v2", "v1"], default="v2")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--batch", type=int, default=1500)
    args = parser.parse_args()
    if not (bench.MODELS / bench.TABULAR).is_dir():
        raise SystemExit(f"no model at {bench.MODELS / bench.TABULAR}: run `make models` first")
    print("\n".join(uvloop.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
