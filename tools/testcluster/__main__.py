"""`python -m testcluster [--dist DIR] [--no-boot] [--keep]`: the cluster test (make cluster-test)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from testcluster.apply import install_crds, kinds_in
from testcluster.controlplane import control_plane
from testcluster.errors import ClusterTestError
from testcluster.kubeapi import Kube
from testcluster.run import check_dist, summary
from testcluster.versions import REPO_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testcluster", description=__doc__)
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "dist", help="the dist/ folder to check")
    parser.add_argument("--no-boot", action="store_true", help="skip booting the inference Deployments")
    parser.add_argument(
        "--keep", action="store_true", help="keep the control plane's folder (logs) afterwards"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        with control_plane(keep=args.keep) as plane, plane.client() as http:
            kube = Kube(http)
            crds = install_crds(kube, kinds_in(args.dist))
            print(f"control plane up at {plane.url} ({plane.workdir}); {crds} CRDs installed", flush=True)
            envs, others = check_dist(kube, args.dist, boot_check=not args.no_boot)
            plane.check_alive()
    except ClusterTestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in summary(envs, others):
        print(line)
    for warning in [w for e in envs for w in e.folder.warnings] + [w for o in others for w in o.warnings]:
        print(f"expected warning: {warning}")
    failures = [f for e in envs for f in e.failures] + [f for o in others for f in o.failures]
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    took = time.monotonic() - started
    print(f"cluster test: {len(failures)} failures in {took:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
