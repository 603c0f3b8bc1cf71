"""The inference service's cold start from zero, in the cluster test's boot sandbox: container start to ready.

For each model the image carries, alone, then for the environment's own set, it boots dist/<env>/'s inference
Deployment the way the boot check does (tools/testcluster/boot.py: the built image, exactly its manifest's
environment, arguments, volumes and security context, Redis booted first) and times the span from starting
the container to its readiness probe passing, tried every 50 ms. That span is what a serverless service
at `minReplicas: 0` adds to the first request after it scaled to zero, on top of Knative's own work (the
activator holding the request, scheduling the pod, an image pull on a node that never ran the revision),
which no sandbox here has. Each model set is booted `--rounds` times; it prints the median, the fastest and
the slowest, and what one readiness probe costs (the resolution: a probe is a process in the sandbox's
network).

Usage (root, after `make image`): .venv/bin/python bench/cold_start_bench.py [--env dev] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tools"), str(REPO / "policies"), str(REPO / "constructs")]

from testcluster import boot, sandbox  # noqa: E402
from testcluster.apply import load_folder  # noqa: E402

POLL_S = 0.05
MODELS_KEY = "INFERENCE_MODELS"


def model_sets(models: Path, own: str) -> list[tuple[str, str]]:
    """(label, INFERENCE_MODELS) for each model version of the built repository alone, then `own`."""
    found = []
    for onnx in sorted(models.glob("*/*/model.onnx")):
        name, version = onnx.parts[-3], onnx.parts[-2]
        size = onnx.stat().st_size
        found.append((f"{name}:{version} ({size / 1e6:.2f} MB)", f"{name}:{version}"))
    return [*found, (f"the environment's own ({own})", own)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--env", default="dev")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", type=Path, default=REPO / "build" / "models")
    args = parser.parse_args(argv)
    manifests = load_folder(REPO / "dist" / args.env)
    with boot.environment(manifests) as env:
        (deployment,) = [d for d in boot.inference_deployments(env.objects) if "canary" not in d.label]
        container = deployment.obj["spec"]["template"]["spec"]["containers"][0]
        config = env.objects.by_kind["ConfigMap"][container["envFrom"][0]["configMapRef"]["name"]].obj["data"]
        own = str(config[MODELS_KEY])
        print(f"{deployment.label}: container start to ready, {args.rounds} boots per model set")
        print(f"{'models':60} {'median s':>9} {'min s':>7} {'max s':>7}")
        probe_s: list[float] = []
        for n, (label, models) in enumerate(model_sets(args.models, own)):
            config[MODELS_KEY] = models  # the ConfigMap the boot reads the container's environment from
            times = []
            for i in range(args.rounds):
                started = time.monotonic()
                running, problem = env.boot(deployment, poll_s=POLL_S, pod_name=f"cold-{n}-{i}")
                times.append(time.monotonic() - started)
                if problem is None:
                    probe_s.append(_probe_cost(container, running, env))
                for r in running:
                    r.stop()
                if problem:
                    print(f"{label}: {problem}", file=sys.stderr)
                    return 1
            print(f"{label:60} {statistics.median(times):9.2f} {min(times):7.2f} {max(times):7.2f}")
        print(
            f"one readiness probe takes {statistics.median(probe_s):.3f} s (median; tried every {POLL_S} s): "
            "the resolution of the figures above"
        )
    return 0


def _probe_cost(container: dict[str, Any], running: list[sandbox.Running], env: boot.Environment) -> float:
    """How long one readiness probe takes against the ready container."""
    started = time.monotonic()
    boot.probe_once(container["readinessProbe"], container, running[-1], env.net)
    return time.monotonic() - started


if __name__ == "__main__":
    sys.exit(main())
