"""The SBOM of each built image: syft (tools/setup/supplychain-tools.sh) over its OCI layout, as SPDX 2.3 JSON
next to the layout (build/images/<name>.spdx.json). It lists the Debian packages (dpkg's database) and the
Python distributions (the virtualenv's .dist-info) of the image.

syft stamps two things that change on every run: `creationInfo.created` (the time) and a random UUID in
`documentNamespace`. Both are set here from the image alone, the time to SOURCE_DATE_EPOCH and the UUID to one
derived from the image's digest (uuid5), so a rebuild of the same image writes the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from imagebuild.definitions import SOURCE_DATE_EPOCH
from imagebuild.errors import BuildError

SUFFIX = ".spdx.json"
CREATED = dt.datetime.fromtimestamp(SOURCE_DATE_EPOCH, dt.UTC)


def path_of(images: Path, name: str) -> Path:
    return images / f"{name}{SUFFIX}"


def _syft() -> str:
    found = shutil.which("syft")
    if found is None:
        raise BuildError(
            "syft is not on PATH: run `make image` (it builds syft: tools/setup/supplychain-tools.sh)"
        )
    return found


def scan(layout: Path) -> dict[str, Any]:
    """syft's SPDX JSON document of the OCI layout (run from its folder, so no absolute path gets in)."""
    with tempfile.TemporaryDirectory(prefix="sbom-") as tmp:
        env = {
            **os.environ,
            "SYFT_CHECK_FOR_APP_UPDATE": "false",
            "XDG_CONFIG_HOME": tmp,  # no user's syft config changes what is catalogued
            "XDG_CACHE_HOME": tmp,
            "HOME": tmp,
        }
        argv = [_syft(), "scan", f"oci-dir:{layout.name}", "--quiet", "-o", "spdx-json"]
        done = subprocess.run(argv, cwd=layout.parent, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise BuildError(f"syft failed on {layout}: {tail}")
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def deterministic(doc: dict[str, Any], name: str, digest: str) -> dict[str, Any]:
    """The document with syft's run-dependent fields set from the image (see the module's docstring)."""
    namespace = doc.get("documentNamespace", "")
    head, sep, _ = namespace.rpartition("/")
    stable = uuid.uuid5(uuid.NAMESPACE_URL, f"{name}@{digest}")
    if not sep or not head:
        raise BuildError(f"syft wrote an unexpected documentNamespace {namespace!r}")
    doc["documentNamespace"] = f"{head}/{name}-{stable}"
    doc["creationInfo"]["created"] = CREATED.strftime("%Y-%m-%dT%H:%M:%SZ")
    return doc


def counts(doc: dict[str, Any]) -> dict[str, int]:
    """How many packages of each purl type (deb, pypi, ...) the document lists."""
    found: dict[str, int] = {}
    for package in doc.get("packages") or []:
        for ref in package.get("externalRefs") or []:
            if ref.get("referenceType") == "purl":
                kind = str(ref["referenceLocator"]).removeprefix("pkg:").split("/", 1)[0]
                found[kind] = found.get(kind, 0) + 1
    return found


def write(layout: Path, name: str, digest: str, out: Path) -> dict[str, int]:
    """The SBOM of the image in `layout` at out/<name>.spdx.json (written atomically); its package counts."""
    doc = deterministic(scan(layout), name, digest)
    target = path_of(out, name)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(target)
    return counts(doc)
