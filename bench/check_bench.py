"""Times the full policy check (`python -m policy_check --reports <tmp>`, what `make check` runs) warm.

Prints one cold run, then the min/median/max of N warm runs over every environment in dist/.
Usage: .venv/bin/python bench/check_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_run(reports: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "policy_check", "--reports", str(reports)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"policy check failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    envs = sorted(p.name for p in (REPO / "dist").iterdir() if p.is_dir())
    with tempfile.TemporaryDirectory() as tmp:
        first = one_run(Path(tmp))
        warm = [one_run(Path(tmp)) for _ in range(args.runs)]
    print(f"policy check over dist/ folders {', '.join(envs)}")
    print(f"  first run: {first:.2f} s")
    print(
        f"  warm ({args.runs} runs): min {min(warm):.2f} s, median {statistics.median(warm):.2f} s,"
        f" max {max(warm):.2f} s (target < 3 s)"
    )


if __name__ == "__main__":
    main()
