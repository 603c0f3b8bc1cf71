"""python -m promote --from dev --to stage [--services a,b] [--skip] [--repo DIR]: see promote.run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from promote.run import Refused, promote
from review.snapshot import GitError

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m promote", description="copy a build to the next environment")
    p.add_argument("--from", dest="source", required=True, help="the environment the build runs in")
    p.add_argument("--to", dest="target", required=True, help="the environment to promote it to")
    p.add_argument("--services", help="only these services, comma-separated (default: every image)")
    p.add_argument("--skip", action="store_true", help="allow skipping environments of the promotion order")
    p.add_argument("--repo", type=Path, default=REPO_ROOT, help="the repository (default: this one)")
    args = p.parse_args(argv)
    services = [s for s in args.services.split(",") if s] if args.services else None
    try:
        done = promote(args.repo.resolve(), args.source, args.target, services=services, skip=args.skip)
    except (Refused, GitError) as err:
        print(f"promote: refused: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(done.review)
    print(f"\npromote: committed on branch {done.branch} (not pushed): git push -u origin {done.branch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
