"""Writing dist/: cdk8s's YAML, one file per object named by kind and name, atomically, no stale files."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import yaml

_DOCUMENT_START = re.compile(r"^---\n", re.MULTILINE)
_KIND = re.compile(r"^kind: (.+)$", re.MULTILINE)
#: In cdk8s's YAML, apiVersion, kind and metadata come first and keys are sorted: the first key `name`
#: indented by two spaces is metadata.name (labels and annotations are indented by four).
_NAME = re.compile(r"^  name: (.+)$", re.MULTILINE)


def file_name(document: str) -> str:
    """`<kind>-<name>.yaml` of one YAML document as cdk8s writes it, e.g. `networkpolicy-allow-dns.yaml`."""
    kind, name = _KIND.search(document), _NAME.search(document)
    if kind is None or name is None:
        raise ValueError(f"not a Kubernetes object as cdk8s writes one:\n{document[:300]}")
    return f"{_scalar(kind.group(1)).lower()}-{_scalar(name.group(1))}.yaml"


def _scalar(text: str) -> str:
    """A plain scalar as is; a quoted one (a name like "yes" or "123" that YAML 1.1 must quote) unquoted."""
    return str(yaml.safe_load(text)) if text[0] in "\"'" else text


def manifest_files(documents: str) -> dict[str, str]:
    """Split cdk8s's multi-document YAML into one file per object, sorted by file name."""
    files: dict[str, str] = {}
    for document in _DOCUMENT_START.split(documents):
        if not document.strip():
            continue
        name = file_name(document)
        if name in files:
            raise ValueError(f"two objects would be written to {name}")
        files[name] = document
    return dict(sorted(files.items()))


def write_tree(out: Path, folders: dict[str, dict[str, str | bytes]], *, replace_all: bool) -> None:
    """Write `folders` (folder -> file -> content) under `out`.

    Everything is first written to a temporary folder beside `out`, then swapped in by renames, so a failure
    leaves `out` as it was. `replace_all` replaces `out` as a whole (stale folders disappear); otherwise only
    the given folders are replaced (a folder `<env>/<cluster>` with its environment's whole folder).
    """
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        for folder, files in folders.items():
            target = staging / folder
            target.mkdir(parents=True)
            for name, content in files.items():
                data = content.encode("utf-8") if isinstance(content, str) else content
                (target / name).write_bytes(data)
        if replace_all or not out.exists():
            _swap(staging, out)
            return
        for top in sorted({folder.split("/")[0] for folder in folders}):  # an environment's clusters whole
            _swap(staging / top, out / top)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap(new: Path, old: Path) -> None:
    if old.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{old.name}.old-", dir=old.parent))
        old.rename(trash / old.name)
        new.rename(old)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        new.rename(old)
