"""Synthesize dist/ from overlays/: `python main.py [--env NAME ...] [--out DIR]`.

Loads the platform spec and every overlay, builds one cdk8s App per environment and writes
dist/<env>/, dist/argocd/ and dist/cluster-policies/. Run by `make synth` and by `cdk8s synth` (cdk8s.yaml).

`cdk8s synth` deletes its output folder before it runs the app, so cdk8s.yaml points the CLI at a scratch
folder (CLI_OUTDIR) and runs this file with the project's own Python: when CDK8S_OUTDIR is that folder, the
real target is dist/, written atomically as `make synth` writes it, and the scratch folder becomes a link to
it (what the CLI lists). A failed synth, under any PATH, leaves dist/ as it was.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
#: The output folder cdk8s.yaml gives the cdk8s CLI (which removes it before each run): never dist/.
CLI_OUTDIR = Path("build/cdk8s.out")
# This tree's generator and CRD classes come first, whatever the virtualenv's editable install points at:
# another tree (a base revision, a bench copy) may run its main.py with this .venv (which provides cdk8s).
sys.path[:0] = [str(REPO_ROOT / "constructs"), str(REPO_ROOT / "imports")]
# jsii prints a banner for an end-of-life Node (as byte literals, through Python); the README asks Node 20+.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

from mlplatform.schema import SpecError  # noqa: E402
from mlplatform.synth import synthesize  # noqa: E402


def output_folder(explicit: Path | None) -> tuple[Path, Path | None]:
    """Where to write, and the cdk8s CLI's scratch folder to link to it (None outside `cdk8s synth`)."""
    dist = REPO_ROOT / "dist"
    if explicit is not None:
        return explicit, None
    cli_out = os.environ.get("CDK8S_OUTDIR")
    if not cli_out:
        return dist, None
    if Path(cli_out).resolve() == (REPO_ROOT / CLI_OUTDIR).resolve():
        return dist, Path(cli_out)
    return Path(cli_out), None  # `cdk8s synth --output DIR` or `--stdout`: that folder


def link_for_cli(scratch: Path, target: Path) -> None:
    """The CLI's scratch folder as a relative link to `target` (the CLI removes a link, never its target)."""
    scratch.parent.mkdir(parents=True, exist_ok=True)
    if scratch.is_symlink() or scratch.is_file():
        scratch.unlink()
    scratch.symlink_to(os.path.relpath(target.resolve(), scratch.parent.resolve()), target_is_directory=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--env", action="append", help="synthesize only this environment (repeatable)")
    parser.add_argument("--out", type=Path, help="output folder (default: $CDK8S_OUTDIR or dist)")
    args = parser.parse_args(argv)
    out, scratch = output_folder(args.out)
    started = time.perf_counter()
    try:
        rendered = synthesize(REPO_ROOT, out=out, only=args.env)
    except (SpecError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"nothing was written to {out}", file=sys.stderr)
        return 2
    if scratch is not None:
        link_for_cli(scratch, out)
    count = sum(len(files) for files in rendered.folders.values())
    took = time.perf_counter() - started
    print(f"synthesized {', '.join(sorted(rendered.folders))} ({count} files) into {out} in {took:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
