"""The engines' findings for a folder of dist/, kept for the next run while nothing they depend on changed.

A folder's entry is keyed on everything that decides its findings: every file of the folder (names and bytes),
what the gate hands the engines besides (the declared spec, the file list, the other dist/ folders, the
folder's waivers), every policy and the gate's own code (policies/kyverno, policies/conftest,
policies/policy_check, the labels it imports, the pinned CRD versions) and the engines themselves (the SHA-256
of the kyverno and conftest binaries). A change to any of them is a new key, so an entry is never
trusted across a tool or policy change; an unreadable entry is a miss. An entry holds the engines' findings
with their lines in the folder's files (which the key covers) and the labels of the objects they name;
waivers, the spec fields behind findings (overlays/ lines, which the key does not cover) and the report are
worked out again on every run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from policy_check.findings import Finding

FORMAT = "2"  # bump when what an entry holds or how the key is made changes
#: What the findings also depend on, relative to the repository root (files, or folders taken whole).
CODE = (
    "policies/kyverno",
    "policies/conftest",
    "policies/policy_check",
    "constructs/mlplatform/labels.py",
    "tools/versions.env",
)


def default_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlplatform" / "policy-check"


def files_of(path: Path) -> list[Path]:
    """`path` if it is a file, else every file under it (bytecode caches left out), sorted."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


class Cache:
    def __init__(self, folder: Path, repo_root: Path, tools: list[Path]) -> None:
        self.folder = folder
        h = hashlib.sha256(f"policy-check-cache {FORMAT}\n".encode())
        for tool in tools:
            h.update(f"tool {tool.name} {self._binary_digest(tool)}\n".encode())
        for part in CODE:
            for file in files_of(repo_root / part):
                h.update(f"code {file.relative_to(repo_root)} ".encode())
                h.update(hashlib.sha256(file.read_bytes()).digest())
        self.base = h.hexdigest()

    def _binary_digest(self, tool: Path) -> str:
        """The binary's SHA-256, remembered per (path, inode, size, mtime): a new build is a new file."""
        st = tool.stat()
        stamp = f"{tool.resolve()}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
        memo = self.folder / "binaries" / hashlib.sha256(stamp.encode()).hexdigest()
        try:
            return memo.read_text(encoding="utf-8").strip()
        except OSError:
            pass
        h = hashlib.sha256()
        with tool.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        self._write(memo, h.hexdigest())
        return h.hexdigest()

    def key(self, folder: Path, files: list[str], extra: Any) -> str:
        h = hashlib.sha256(self.base.encode())
        h.update(json.dumps(extra, sort_keys=True, default=str).encode())
        for rel in files:
            h.update(f"\nfile {rel} ".encode())
            h.update(hashlib.sha256((folder / rel).read_bytes()).digest())
        return h.hexdigest()

    def get(self, key: str) -> tuple[list[Finding], dict[str, dict[str, str]]] | None:
        """The entry's findings and the labels of the objects they name; None: no (readable) entry."""
        try:
            raw = json.loads((self.folder / "findings" / f"{key}.json").read_text(encoding="utf-8"))
            # JSON has no tuples
            found = [Finding(**{**f, "field": tuple(f.get("field", ()))}) for f in raw["findings"]]
            labels = {str(k): {str(n): str(v) for n, v in ls.items()} for k, ls in raw["labels"].items()}
            return found, labels
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def put(self, key: str, found: list[Finding], labels: dict[str, dict[str, str]]) -> None:
        entry = {"findings": [dataclasses.asdict(f) for f in found], "labels": labels}
        self._write(self.folder / "findings" / f"{key}.json", json.dumps(entry, sort_keys=True))

    @staticmethod
    def _write(path: Path, text: str) -> None:
        """Write through a temporary file and a rename, so a reader never sees half an entry."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        Path(tmp).replace(path)
