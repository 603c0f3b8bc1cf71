"""`python -m addons [--dist dist] [--out build/addons]`: render every add-on Application of
dist/infrastructure/<cluster>/ from its pinned Go module; one YAML file of objects per Application
(<out>/<cluster>/<application>.yaml, its sync hooks in <application>.hooks.yaml) and a line each."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from addons.collect import render_all
from addons.errors import AddonError
from testcluster.versions import REPO_ROOT


def _dump(objects: list[dict[str, Any]]) -> str:
    return yaml.dump_all(objects, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m addons", description=__doc__)
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "dist")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "addons")
    args = parser.parse_args(argv)
    try:
        rendered = render_all(args.dist)
    except AddonError as err:
        print(f"addons: {err}", file=sys.stderr)
        return 1
    for cluster, renders in rendered.items():
        folder = args.out / cluster
        folder.mkdir(parents=True, exist_ok=True)
        for r in renders:
            (folder / f"{r.application}.yaml").write_text(_dump(r.objects), encoding="utf-8")
            (folder / f"{r.application}.hooks.yaml").write_text(_dump(r.hooks), encoding="utf-8")
            print(
                f"{cluster}: {r.application}: {len(r.objects)} objects ({len(r.crds())} CRDs), "
                f"{len(r.hooks)} sync hooks, from {r.upstream.repo_url} {r.upstream.chart or r.upstream.path}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
