"""`python -m imagebuild publish`: copy the built layouts to a registry and sign each digest with cosign.

For each image `make image` built (build/images/<name>/, its SBOM beside it):
1. `skopeo copy oci:build/images/<name>:latest docker://<prefix>/<name>:<tag>`: the manifest goes unchanged,
   so the pushed image has the digest the overlays pin;
2. `cosign sign --key KEY <prefix>/<name>@<digest>`: a signature of that digest, stored in the registry beside
   the image; the cluster's verify-image-signatures policy (dist/cluster-policies/) admits only such images;
3. `cosign attest --type spdxjson`: the SBOM, signed by the same key, attached to the same digest.

KEY is any cosign key reference: a key file (its password in COSIGN_PASSWORD), `hashivault://NAME`,
`awskms://...`, `gcpkms://...`, `azurekms://...`, or `k8s://NAMESPACE/SECRET`. Nothing goes to a public
transparency log (the key is the trust root, as the policy says) unless `--tlog-upload` is given.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from imagebuild import sbom
from imagebuild.errors import BuildError

TAG = "latest"  # the tag each layout's index.json names (build.TAG)
#: cosign key references that are not files (no password to give).
KMS_SCHEMES = ("hashivault://", "awskms://", "gcpkms://", "azurekms://", "k8s://")


def layouts(images: Path) -> dict[str, str]:
    """Layout name -> the digest of its image."""
    found = {}
    for index in sorted(images.glob("*/index.json")):
        found[index.parent.name] = json.loads(index.read_text(encoding="utf-8"))["manifests"][0]["digest"]
    if not found:
        raise BuildError(f"no image in {images}: run `make image` first")
    return found


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BuildError(f"{name} is not on PATH: run `make image` (it installs skopeo, cosign and syft)")
    return found


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise BuildError(f"{what} failed: {tail}")


def cosign_sign(ref: str, key: str, *, tlog_upload: bool = False) -> None:
    """Sign `ref` (a digest reference) with `key`; offline unless `tlog_upload`."""
    argv = [_tool("cosign"), "sign", "--yes", "--key", key, f"--tlog-upload={str(tlog_upload).lower()}"]
    if not tlog_upload:
        argv.append("--use-signing-config=false")  # else cosign fetches the public signing config
    _run([*argv, ref], f"cosign sign {ref}")


def cosign_attest(ref: str, key: str, predicate: Path, *, tlog_upload: bool = False) -> None:
    argv = [
        _tool("cosign"),
        "attest",
        "--yes",
        "--key",
        key,
        "--type",
        "spdxjson",
        "--predicate",
        str(predicate),
    ]
    argv.append(f"--tlog-upload={str(tlog_upload).lower()}")
    if not tlog_upload:
        argv.append("--use-signing-config=false")
    _run([*argv, ref], f"cosign attest {ref}")


def publish(
    images: Path, prefix: str, key: str, *, tag: str = TAG, tls_verify: bool = True, tlog_upload: bool = False
) -> list[str]:
    """Copy, sign and attest every built image under `prefix` (ghcr.io/example); the signed references."""
    if not key:
        raise BuildError(
            "no signing key: give --key (a cosign key reference; README: Publishing and signing)"
        )
    prefix = prefix.rstrip("/")
    signed = []
    if "COSIGN_PASSWORD" not in os.environ and not key.startswith(KMS_SCHEMES):
        raise BuildError(f"--key {key} is a key file: set COSIGN_PASSWORD (its password, empty for none)")
    for name, digest in layouts(images).items():
        target = f"{prefix}/{name}"
        _run(
            [
                _tool("skopeo"),
                "copy",
                "--quiet",
                f"--dest-tls-verify={str(tls_verify).lower()}",
                f"oci:{images / name}:{TAG}",
                f"docker://{target}:{tag}",
            ],
            f"skopeo copy of {name} to {target}",
        )
        ref = f"{target}@{digest}"
        cosign_sign(ref, key, tlog_upload=tlog_upload)
        document = sbom.path_of(images, name)
        if document.is_file():
            cosign_attest(ref, key, document, tlog_upload=tlog_upload)
        signed.append(ref)
    return signed
