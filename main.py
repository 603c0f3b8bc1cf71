"""Synthesize dist/ from overlays/: `python main.py [--env NAME ...] [--out DIR]`.

Loads the platform spec and every overlay, builds one cdk8s App per environment and writes
dist/<env>/, dist/argocd/ and dist/cluster-policies/. Run by `make synth` and by `cdk8s synth` (cdk8s.yaml).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO_ROOT / "constructs"))  # works without the editable install too

from mlplatform.spec import SpecError  # noqa: E402
from mlplatform.synth import synthesize  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--env", action="append", help="synthesize only this environment (repeatable)")
    parser.add_argument("--out", type=Path, help="output folder (default: $CDK8S_OUTDIR or dist)")
    args = parser.parse_args(argv)
    out = args.out or Path(os.environ.get("CDK8S_OUTDIR") or REPO_ROOT / "dist")
    started = time.perf_counter()
    try:
        rendered = synthesize(REPO_ROOT, out=out, only=args.env)
    except (SpecError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"nothing was written to {out}", file=sys.stderr)
        return 2
    count = sum(len(files) for files in rendered.folders.values())
    took = time.perf_counter() - started
    print(f"synthesized {', '.join(sorted(rendered.folders))} ({count} files) into {out} in {took:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
