"""dist/ as text, at a git ref or in the working tree: {folder: {file: text}}, one git call per side."""

from __future__ import annotations

import subprocess
from pathlib import Path

from policy_check.dist import HELM

Snapshot = dict[str, dict[str, str]]


class GitError(Exception):
    """A git command failed (an unknown ref, not a repository)."""


def git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def default_base(repo: Path) -> str:
    """The merge base with origin/main, else HEAD~1 (a repository without that remote, or a first commit)."""
    for args in (("merge-base", "HEAD", "origin/main"), ("rev-parse", "--verify", "-q", "HEAD~1")):
        try:
            return git(repo, *args).decode().strip()
        except GitError:
            continue
    raise GitError("no BASE given, no origin/main and no HEAD~1 to compare with; pass BASE=<git ref>")


def at_ref(repo: Path, ref: str, folder: str = "dist") -> Snapshot:
    """Every file under `folder` at `ref` (git ls-tree, then one git cat-file --batch for all blobs)."""
    commit = git(repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}").decode().strip()
    listing = git(repo, "ls-tree", "-r", "-z", commit, "--", f"{folder}/").split(b"\0")
    entries = []
    for line in filter(None, listing):
        meta, name = line.split(b"\t", 1)
        _mode, kind, sha = meta.split()
        if kind == b"blob":
            entries.append((name.decode(), sha.decode()))
    out = git(repo, "cat-file", "--batch", stdin="".join(f"{sha}\n" for _, sha in entries).encode())
    snap: Snapshot = {}
    pos = 0
    for path, _sha in entries:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        body = out[header_end + 1 : header_end + 1 + size]
        pos = header_end + 1 + size + 1
        _add(snap, path[len(folder) + 1 :], body)
    return snap


def working(repo: Path, folder: str = "dist") -> Snapshot:
    root = repo / folder
    snap: Snapshot = {}
    for path in sorted(root.rglob("*")) if root.is_dir() else ():
        if path.is_file():
            _add(snap, str(path.relative_to(root)), path.read_bytes())
    return snap


def _add(snap: Snapshot, rel: str, body: bytes) -> None:
    """File `rel` of dist/ into its folder: dist/<env>/, or dist/<env>/<cluster>/ of an environment on
    several clusters (a section each: the clusters' objects have the same names)."""
    top, _, rest = rel.partition("/")
    if top == HELM:  # the same environments as a chart (`make helm` proves it): their sections are its review
        return
    cluster, _, file = rest.partition("/")
    if file:
        top, rest = f"{top}/{cluster}", file
    if rest:
        snap.setdefault(top, {})[rest] = body.decode("utf-8", errors="replace")
