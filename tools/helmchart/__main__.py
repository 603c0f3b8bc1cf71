"""`python -m helmchart check [--dist dist]`: `helm template` with each environment's values gives
dist/<env>/ object by object, and `helm lint --strict` is clean. `python -m helmchart package [--out DIR]`:
the chart as a .tgz whose version carries the commit. Both use the pinned helm (.tools/bin/helm, built by
tools/setup/renderers.sh)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from helmchart.check import ChartError, chart_of, check, package

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helmchart", description=__doc__)
    parser.add_argument("command", choices=["check", "package"])
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "dist")
    parser.add_argument("--helm", type=Path, default=REPO_ROOT / ".tools" / "bin" / "helm")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "helm")
    args = parser.parse_args(argv)
    try:
        if args.command == "package":
            commit = subprocess.run(
                ["git", "rev-parse", "--short=12", "HEAD"],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            print(f"packaged {package(args.helm, chart_of(args.dist), args.out, commit)}")
            return 0
        failed = 0
        for result in check(args.helm, args.dist):
            verdict = "same objects" if not result.problems else f"{len(result.problems)} problem(s)"
            print(
                f"dist/{result.environment}/: helm template -f {result.values}: "
                f"{result.objects} objects, {verdict}"
            )
            for problem in result.problems:
                print(f"  {problem}")
            failed += bool(result.problems)
        print("helm lint --strict: clean (default values and each environment's)")
        return 1 if failed else 0
    except ChartError as err:
        print(f"helmchart: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
