"""How long `make review` takes on a change that touches every environment, cold and warm.

A temporary git repository holds this checkout's spec, generator, policies and dist/ (committed: the BASE);
the change (Redis's eviction policy allkeys-lru -> allkeys-lfu in overlays/platform.yaml) re-renders the
Redis ConfigMap in dev, stage and prod, and is synthesized into the working tree. Then
`python -m review --repo <tmp> --base HEAD` (what `make review` runs) is timed: the first run (the gate's
cache cold for the changed folders: Kyverno and conftest run over them) and `--runs` more (warm: the gate's
findings come from its cache, as after `make check`). Also with --no-gate, to show what the review itself
costs. Prints wall seconds and the CPU of the process and its children.
Usage: .venv/bin/python bench/review_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = (
    "main.py",
    "constructs/mlplatform",
    "tools/versions.env",  # the add-ons' pinned versions (mlplatform.infrastructure)
    "overlays",
    "dist",
    "policies",
    "apps/inference/model_build/catalog.json",
)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def make_repo(root: Path) -> Path:
    for rel in COPIED:
        src, dst = REPO / rel, root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.email=bench@example.com", "-c", "user.name=bench", "add", "-A")
    git(root, "-c", "user.email=bench@example.com", "-c", "user.name=bench", "commit", "-q", "-m", "base")
    platform = root / "overlays" / "platform.yaml"
    text = platform.read_text(encoding="utf-8")
    assert "maxmemoryPolicy: allkeys-lru" in text
    platform.write_text(
        text.replace("maxmemoryPolicy: allkeys-lru", "maxmemoryPolicy: allkeys-lfu"), encoding="utf-8"
    )
    subprocess.run([sys.executable, "-O", "main.py"], cwd=root, check=True, capture_output=True)
    return root


def timed(repo: Path, *extra: str) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = repo / "reports" / "review.md"
    cmd = [sys.executable, "-m", "review", "--repo", str(repo), "--base", "HEAD", "--out", str(out), *extra]
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.read_text(encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="review-bench-") as tmp:
        repo = make_repo(Path(tmp))
        wall, cpu, text = timed(repo)
        touched = [line for line in text.splitlines() if line.startswith("- ") and "changed" in line]
        print(f"change: {len(touched)} folders changed ({'; '.join(t[2:] for t in touched)})")
        print(f"first run (gate cache cold for the changed folders): {wall:.2f} s wall, {cpu:.2f} s CPU")
        for label, extra in (("warm", ()), ("warm, --no-gate", ("--no-gate",))):
            runs = [timed(repo, *extra) for _ in range(args.runs)]
            walls = [r[0] for r in runs]
            cpus = [r[1] for r in runs]
            print(
                f"{label}: median {statistics.median(walls):.2f} s wall (min {min(walls):.2f}, max "
                f"{max(walls):.2f}), median {statistics.median(cpus):.2f} s CPU, {args.runs} runs"
            )


if __name__ == "__main__":
    main()
