"""python -m review [--base REF] [--out reports/review.md] [--repo DIR] [--no-gate]

Compares dist/ at BASE (default: the merge base with origin/main, else HEAD~1) with the working tree, runs
the gate on the working tree (with `make check`'s cache), prints the review as Markdown and writes it to
--out. Exit 0 whatever the gate says (the gate's own job fails the pull request), 2 on bad input.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from review import gate, report, snapshot, spec

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m review", description=(__doc__ or "").splitlines()[0])
    p.add_argument(
        "--base", default="", help="git ref to compare with (default: merge base with origin/main)"
    )
    p.add_argument("--repo", type=Path, default=REPO_ROOT, help="the repository (default: this one)")
    p.add_argument("--out", type=Path, help="where to write the Markdown (default: <repo>/reports/review.md)")
    p.add_argument("--gate", action=argparse.BooleanOptionalAction, default=True, help="run the gate")
    args = p.parse_args(argv)
    repo = args.repo.resolve()
    try:
        base = args.base or snapshot.default_base(repo)
        label = snapshot.git(repo, "rev-parse", "--short", base).decode().strip()
        before = snapshot.at_ref(repo, base)
    except snapshot.GitError as err:
        print(f"review: error: {err}", file=sys.stderr)
        return 2
    verdict = gate.run(repo) if args.gate else gate.Verdict(ran=False, error="--no-gate")
    found = report.folders(before, snapshot.working(repo), lambda env: spec.peers(repo / "overlays", env))
    shown = label if re.fullmatch(r"[0-9a-f]{40}", base) else f"{base} ({label})"
    text = report.render(found, verdict, base_label=shown)
    out = args.out or repo / "reports" / "review.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
