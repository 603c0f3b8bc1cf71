"""The drift check's fresh synth, kept while nothing the synth reads has changed.

A fresh synth costs the gate a Python process that loads cdk8s and starts jsii's Node kernel: seconds, where
the rest of a warm gate (every folder's findings cached) takes well under one. A synth's output depends only
on what it reads, so an entry is keyed on all of it:

- every file of INPUTS (names and bytes): the generator, its CRD classes, the spec, the cluster policies and
  waivers it copies, and the parts of the service it imports (the catalog, the access-policy schema);
- the interpreter and every installed distribution (name and version), and the Node binary jsii runs;
- the UTC date (a waiver past its expiry date renders no PolicyException) and the environment asked for.

tests/policies/test_synth_cache.py runs a real synth under an audit hook and fails if it opens a file of the
repository that INPUTS does not cover, so a new input cannot be missed silently. An unreadable or partial
entry is a miss; entries are written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from policy_check.cache import files_of

FORMAT = "1"  # bump when what an entry holds or how the key is made changes
#: What a synth reads from the repository (files, or folders taken whole), relative to its root.
INPUTS = (
    "main.py",
    "constructs",
    "imports",
    "overlays",
    "tools/versions.env",  # the add-ons' pinned versions (mlplatform.infrastructure)
    "policies/kyverno",
    "policies/exceptions.yaml",
    "apps/inference/inference_service",
    "apps/inference/model_build",
)
#: Entries kept (the newest by modification time); older ones are removed when one is added.
KEEP = 8
DONE = ".complete"  # written last into an entry: an entry without it is a miss


def _distributions() -> list[str]:
    """Every installed distribution as its .dist-info folder names it (name and version)."""
    found: set[str] = set()
    for where in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        with contextlib.suppress(OSError):
            found.update(p.name for p in Path(where).iterdir() if p.suffix in (".dist-info", ".egg-info"))
    return sorted(found)


def _node() -> str:
    """The Node binary jsii starts (first on PATH): its resolved path, size and modification time."""
    node = shutil.which("node")
    if node is None:
        return "none"
    st = Path(node).resolve().stat()
    return f"{Path(node).resolve()}:{st.st_size}:{st.st_mtime_ns}"


def key(repo_root: Path, *, only_env: str | None, today: dt.date | None = None) -> str:
    today = today or dt.datetime.now(dt.UTC).date()
    h = hashlib.sha256(f"synth-cache {FORMAT}\n".encode())
    h.update(f"python {sys.version} {sys.executable}\nnode {_node()}\n".encode())
    h.update(f"date {today.isoformat()}\nenv {only_env or '*'}\n".encode())
    for name in _distributions():
        h.update(f"dist {name}\n".encode())
    for part in INPUTS:
        for file in files_of(repo_root / part):
            h.update(f"file {file.relative_to(repo_root)} ".encode())
            h.update(hashlib.sha256(file.read_bytes()).digest())
    return h.hexdigest()


class SynthCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, key: str) -> Path | None:
        """The cached dist/ tree for `key`, or None."""
        entry = self.folder / key
        if not (entry / DONE).is_file():
            return None
        entry.touch()  # the newest entries are the ones kept
        return entry / "dist"

    def put(self, key: str, tree: Path) -> None:
        """Keep a copy of `tree` (a synth's output folder) under `key`; a failure leaves no entry."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.folder, prefix=".tmp-"))
        try:
            shutil.copytree(tree, tmp / "dist")
            (tmp / DONE).write_text(key, encoding="utf-8")
            with contextlib.suppress(OSError):  # another gate stored the same entry first
                tmp.rename(self.folder / key)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._prune()

    def _prune(self) -> None:
        entries = [p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        entries.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in entries[KEEP:]:
            shutil.rmtree(old, ignore_errors=True)
