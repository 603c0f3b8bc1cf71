"""Synthesis timings: the reference platform (all environments), and synth time as model services are added.

Run: `.venv/bin/python bench/synth_bench.py` (or `make bench`). Prints seconds; "warm" means in the
same process after one untimed synth (jsii's Node process started, modules imported). Synthetic specs with
N services (each with an Ingress/HTTPRoute, the three connections and its own overlay entries) are generated
in a temporary folder, and their output too: in RAM (/dev/shm) where there is one, as writing thousands of
files again and again on a disk soon waits on writeback (0.07 s to 1 s for the same 4,200 files here), which
would measure the disk, not the generator. `--on-disk` uses the default temporary folder instead;
`--sizes 1,20` measures other spec sizes. It runs itself under `python -O`, as `make synth` does;
`--no-optimize` measures without.
Each timing is the median of 3 runs, as wall-clock time and as the CPU time of this process plus jsii's
Node process (on a busy shared machine, CPU time is what the synth costs).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
if not sys.flags.optimize and "--no-optimize" not in sys.argv[1:]:
    # measure synthesis as `make synth` runs it: under -O (jsii's runtime type checks off)
    os.execv(sys.executable, [sys.executable, "-O", *sys.argv])
STARTED = time.perf_counter()
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "constructs"))

from spec_growth import make_spec  # noqa: E402

from mlplatform.schema import list_environments  # noqa: E402
from mlplatform.synth import synthesize  # noqa: E402

IMPORTED = time.perf_counter()

SIZES = (1, 10, 50, 100)
REPEATS = 3


def _descendants(pid: int) -> list[int]:
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in map(int, children.read_text().split()):
            found += [child, *_descendants(child)]
    return found


def cpu_seconds() -> float:
    """CPU time of this process and of its running descendants (jsii's Node processes), from /proc.

    On a shared machine wall-clock time mostly measures the other tenants; the CPU these processes spent is
    what the synth costs, and about what it takes on an idle machine (Python and Node run in turn).
    """
    own = os.times()
    total = own.user + own.system
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _descendants(os.getpid()):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # ended meanwhile
            continue
        total += (int(stat[11]) + int(stat[12])) / tick  # utime, stime
    return total


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:.3f} s wall, {self.cpu:.3f} s CPU"


def timed_synth(repo_root: Path, out: Path, *, without_chart: bool = False) -> Timing:
    """Median of REPEATS synths; `without_chart`: every environment named (`--env`), which skips the Helm
    chart and its renderings of every combination of the feature switches."""
    only = list_environments(repo_root) if without_chart else None
    walls, cpus = [], []
    for _ in range(REPEATS):
        wall, cpu = time.perf_counter(), cpu_seconds()
        synthesize(repo_root, out=out, only=only)
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds() - cpu)
    return Timing(statistics.median(walls), statistics.median(cpus))


def scratch_root() -> str | None:
    """/dev/shm when it is there and writable (and no `--on-disk`), else the default temporary folder."""
    shm = Path("/dev/shm")
    if "--on-disk" in sys.argv[1:] or not (shm.is_dir() and os.access(shm, os.W_OK)):
        return None
    return str(shm)


def main() -> None:
    sizes: tuple[int, ...] = SIZES
    if "--sizes" in sys.argv[1:]:
        sizes = tuple(int(n) for n in sys.argv[sys.argv.index("--sizes") + 1].split(","))
    checks = "skipped" if sys.flags.optimize else "run"
    print(f"python -O: {'on' if sys.flags.optimize else 'off'} (jsii's type checks {checks})")
    print(f"imports (cdk8s, jsii Node process start): {IMPORTED - STARTED:.3f} s")
    scratch = scratch_root()
    print(f"output written under {scratch or tempfile.gettempdir()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        out = Path(tmp) / "dist"
        synthesize(REPO_ROOT, out=out)
        cold = time.perf_counter() - started
        files = sum(1 for p in out.rglob("*") if p.is_file())
        print(f"reference platform, all environments: first synth {cold:.3f} s")
        warm = timed_synth(REPO_ROOT, out)
        print(f"reference platform, all environments: warm synth {warm} ({files} files)")
        bare = timed_synth(REPO_ROOT, Path(tmp) / "bare", without_chart=True)
        print(f"reference platform, all environments, without the Helm chart: warm synth {bare}")
        results: dict[int, Timing] = {}
        without: dict[int, Timing] = {}
        for n in sizes:
            root = Path(tmp) / f"spec-{n}"
            make_spec(root, n)
            shutil.copytree(REPO_ROOT / "policies", root / "policies", dirs_exist_ok=True)
            results[n] = timed_synth(root, Path(tmp) / f"out-{n}")
            files = sum(1 for p in (Path(tmp) / f"out-{n}").rglob("*") if p.is_file())
            without[n] = timed_synth(root, Path(tmp) / f"bare-{n}", without_chart=True)
            print(
                f"{n:4d} services x 3 environments: warm synth {results[n]} ({files} files); "
                f"without the Helm chart {without[n]}"
            )
        for label, timings in (("", results), (", without the Helm chart", without)):
            first, last = timings[sizes[0]], timings[sizes[-1]]
            added = sizes[-1] - sizes[0]
            wall, cpu = (last.wall - first.wall) / added, (last.cpu - first.cpu) / added
            print(
                f"per added service (all environments{label}, {sizes[0]} -> {sizes[-1]}): "
                f"{wall * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU"
            )


if __name__ == "__main__":
    main()
