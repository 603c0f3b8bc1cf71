"""The conftest rules cost linear work in the number of objects: 10x the services, at most 12x the CPU time.

The spec is grown as the check bench grows it (bench/spec_growth.py's make_spec: copies of `inference`) to 3
and to 30 services and synthesized; conftest then checks every environment as the gate runs it, and the CPU
time of its processes is the cost. A join that scans every object for each object (quadratic) costs about
100x between these sizes, so the 12x bound fails it; linear rules cost under 10x (the fixed part, starting
conftest and compiling the policies, makes the ratio smaller still). The ratio of 3 -> 30 services is the
ratio of 10 -> 100 that issue 33 bounds, at a size `make test` can afford; bench/check_bench.py measures the
full sizes.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from mlplatform.synth import synthesize
from policy_check import declared, dist, engines, runner

REPO = Path(__file__).resolve().parents[2]
SMALL, LARGE = 3, 30
BOUND = 12.0


def grown(root: Path, services: int) -> Path:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from spec_growth import make_spec
    finally:
        sys.path.remove(str(REPO / "bench"))
    make_spec(root, services)
    synthesize(root, out=root / "dist")
    return root


def conftest_cpu(root: Path, tools: engines.Tools, tmp: Path) -> float:
    """CPU seconds conftest spends on every environment of root/dist (one process per folder, in turn)."""
    dist_dir = root / "dist"
    envs = dist.environments(dist_dir)
    specs = declared.for_environments(root / "overlays", envs)
    dist_paths = sorted(f"dist/{p.name}" for p in dist_dir.iterdir() if p.is_dir())
    total = 0.0
    for env in envs:
        folder = dist.load_folder(dist_dir, env)
        data = tmp / f"{root.name}-{env}.json"
        data.write_text(
            json.dumps(
                runner.conftest_data(
                    env, folder, specs[env], (dist_paths, declared.repo_url(root / "overlays")), []
                )
            )
        )
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        engines.conftest_findings(engines.start_conftest(tools, folder, data), folder, env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return total


def test_ten_times_the_services_cost_at_most_twelve_times_the_cpu(
    tmp_path: Path, tools: engines.Tools
) -> None:
    small = conftest_cpu(grown(tmp_path / "small", SMALL), tools, tmp_path)
    large = conftest_cpu(grown(tmp_path / "large", LARGE), tools, tmp_path)
    ratio = large / small
    print(f"\nconftest CPU: {SMALL} services {small:.2f} s, {LARGE} services {large:.2f} s: x{ratio:.1f}")
    assert ratio <= BOUND, f"{LARGE / SMALL:.0f}x the services cost {ratio:.1f}x the CPU (bound {BOUND}x)"
