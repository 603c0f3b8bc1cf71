"""`python -m imagebuild build|lock|pin`: thin entry point (see build.py, debian.py, wheels.py, pin.py)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from imagebuild import build, pin, publish, sbom, wheels
from imagebuild.definitions import BASES, IMAGES, REPO_ROOT
from imagebuild.errors import BuildError

DEFAULT_CACHE = Path.home() / ".cache" / "mlplatform" / "images"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagebuild")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build every image into OCI layouts")
    b.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "images")
    b.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="Debian bases and wheels")
    b.add_argument("--models", type=Path, default=REPO_ROOT / "build" / "models")
    lk = sub.add_parser("lock", help="record the Debian packages and the wheel hashes in images/*.lock")
    lk.add_argument("--only", choices=["wheels", "debian"], help="re-record only these inputs")
    pub = sub.add_parser(
        "publish", help="copy the built images to a registry, sign them and attach their SBOMs"
    )
    pub.add_argument("--to", required=True, help="the repositories' prefix, e.g. ghcr.io/example")
    pub.add_argument(
        "--key", required=True, help="a cosign key reference (file, hashivault://, awskms://, k8s://...)"
    )
    pub.add_argument("--images", type=Path, default=REPO_ROOT / "build" / "images")
    pub.add_argument("--tag", default=publish.TAG)
    pub.add_argument("--no-tls-verify", action="store_true", help="a plain-HTTP registry (tests)")
    pub.add_argument("--tlog-upload", action="store_true", help="also record each signature in Rekor")
    p = sub.add_parser("pin", help="write the built digests into overlays/<env>.yaml")
    p.add_argument("--env", required=True, help="an environment, or `all`")
    p.add_argument("--images", type=Path, default=REPO_ROOT / "build" / "images")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            start = time.monotonic()
            for image in build.build_all(IMAGES, args.out, args.cache, args.models):
                listed = sbom.write(args.out / image.name, image.name, image.digest, args.out)
                layer_sizes = ", ".join(
                    f"{name} {_mib(c)} ({_mib(u)})" for name, (c, u) in image.layers.items()
                )
                print(
                    f"{image.name} {image.digest} {_mib(image.compressed)} compressed, "
                    f"{_mib(image.uncompressed)} uncompressed; layers: {layer_sizes}; SBOM: "
                    f"{listed.get('deb', 0)} Debian packages, {listed.get('pypi', 0)} Python distributions"
                )
            print(f"built in {time.monotonic() - start:.0f} s into {args.out} (SBOMs: <name>{sbom.SUFFIX})")
        elif args.command == "lock":
            if args.only != "debian":
                wheels.write_lock()
                print(f"wrote {wheels.LOCK}")
            for base in BASES if args.only != "wheels" else ():
                build.base_tar(base, DEFAULT_CACHE / "debian", relock=True)
                print(f"wrote {base.lock}")
        elif args.command == "publish":
            signed = publish.publish(
                args.images,
                args.to,
                args.key,
                tag=args.tag,
                tls_verify=not args.no_tls_verify,
                tlog_upload=args.tlog_upload,
            )
            for ref in signed:
                print(f"published and signed {ref}")
        else:
            overlays = REPO_ROOT / "overlays"
            envs = pin.environments(overlays) if args.env == "all" else [args.env]
            for env in envs:
                for line in pin.pin(overlays / f"{env}.yaml", args.images):
                    print(line)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
