"""Drift: a dist/ that differs from what a fresh synth of overlays/ writes (rule `dist-drift`).

Argo CD syncs dist/, so a hand edit that breaks no policy (a changed TTL) would still deploy something no
spec says. The check synthesizes into a temporary folder with the project's own `main.py --out` (while the
engines run) and compares file by file: a file only one side has, and the first line where a file differs,
with the object that line belongs to. The pull-request workflow runs `make check`, so CI and a local run
find drift the same way. A synth of the same inputs is taken from policy_check.synth_cache.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from policy_check import dist, synth_cache
from policy_check.findings import Finding
from policy_check.synth_cache import SynthCache

RULE = "dist-drift"
ENGINE = "check"
FIX = "run `make synth` and commit dist/ (never edit dist/ by hand: change overlays/ instead)"


class DriftError(Exception):
    """The fresh synth failed: the spec (or the generator) is broken."""


@dataclass
class Synth:
    """A fresh synth running in the background, into its own temporary folder; or, where the synth cache
    holds one for the same inputs (policy_check.synth_cache), that synth's output."""

    proc: subprocess.Popen[str] | None
    tmp: tempfile.TemporaryDirectory[str] | None
    cached: Path | None = None
    cache: SynthCache | None = None
    key: str = ""

    @property
    def out(self) -> Path:
        if self.cached is not None:
            return self.cached
        assert self.tmp is not None
        return Path(self.tmp.name) / "dist"

    def wait(self) -> Path:
        if self.proc is None:
            return self.out
        out, err = self.proc.communicate()
        if self.proc.returncode != 0:
            self.cleanup()
            lines = (err or out).strip().splitlines()
            raise DriftError("the fresh synth for the drift check failed:\n  " + "\n  ".join(lines[-20:]))
        if self.cache is not None:
            self.cache.put(self.key, self.out)
        return self.out

    def stop(self) -> None:
        """The check stopped early: stop the synth too."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            self.proc.communicate()
        self.cleanup()

    def cleanup(self) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()


def start(repo_root: Path, only_env: str | None = None, cache: SynthCache | None = None) -> Synth:
    """Start a fresh synth of `repo_root` (or take the cached one for the same inputs)."""
    key = synth_cache.key(repo_root, only_env=only_env) if cache is not None else ""
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return Synth(proc=None, tmp=None, cached=cached)
    tmp = tempfile.TemporaryDirectory(prefix="policy-check-synth-")
    cmd = [sys.executable, "-O", str(repo_root / "main.py"), "--out", str(Path(tmp.name) / "dist")]
    if only_env is not None:  # (one cluster's folder <env>/<cluster>: its environment, every cluster)
        cmd += ["--env", dist.environment_of(only_env)]
    proc = subprocess.Popen(cmd, cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return Synth(proc, tmp, cache=cache, key=key)


def check(synth: Synth, dist_dir: Path, only_env: str | None = None) -> list[Finding]:
    try:
        return compare(dist_dir, synth.wait(), only_env)
    finally:
        synth.cleanup()


def compare(dist_dir: Path, fresh: Path, only_env: str | None = None) -> list[Finding]:
    """A finding for every file of `dist_dir` that differs from `fresh` (a synth of the same spec)."""
    folders = sorted(
        {p.name for root in (dist_dir, fresh) if root.is_dir() for p in root.iterdir() if p.is_dir()}
    )
    if only_env is not None:
        folders = [f for f in folders if f == dist.environment_of(only_env)]
    found: list[Finding] = []
    for folder in folders:
        ours, theirs = _files(dist_dir / folder), _files(fresh / folder)
        for rel in sorted(ours | theirs):
            file = rel if "/" not in rel else f"dist/{folder}/{rel}"
            if rel not in theirs:
                found.append(_finding(folder, file, "a fresh synth does not write this file"))
            elif rel not in ours:
                found.append(_finding(folder, file, "missing: a fresh synth writes this file"))
            else:
                found += _changed(dist_dir, fresh, folder, rel, file)
    return found


def _changed(dist_dir: Path, fresh: Path, folder: str, rel: str, file: str) -> list[Finding]:
    a = (dist_dir / folder / rel).read_bytes()
    b = (fresh / folder / rel).read_bytes()
    if a == b:
        return []
    ours = a.decode("utf-8", "replace").splitlines()
    theirs = b.decode("utf-8", "replace").splitlines()
    line = next((i for i, (x, y) in enumerate(zip(ours, theirs, strict=False), start=1) if x != y), 0)
    line = line or min(len(ours), len(theirs)) + 1
    here = ours[line - 1].strip() if line <= len(ours) else "(end of file)"
    there = theirs[line - 1].strip() if line <= len(theirs) else "(end of file)"
    msg = f"line {line} is {here!r} here, {there!r} in a fresh synth"
    return [_finding(folder, file, msg, line, _object_at(dist_dir, folder, rel, line))]


def _object_at(dist_dir: Path, folder: str, rel: str, line: int) -> tuple[str, str, str]:
    """(kind, namespace, name) of the object of `dist_dir/folder/rel` that holds `line` (empty if none)."""
    try:
        loaded = dist.load_folder(dist_dir, folder)
    except dist.DistError:
        return ("", "", "")
    for key, file in loaded.objects.items():
        if file == rel and loaded.lines[key] <= line <= loaded.end_lines[key]:
            return key
    return ("", "", "")


def _finding(
    folder: str, file: str, problem: str, line: int = 0, key: tuple[str, str, str] = ("", "", "")
) -> Finding:
    return Finding(folder, RULE, file, *key, ENGINE, f"{problem}. Fix: {FIX}", line=line)


def _files(folder: Path) -> set[str]:
    return (
        {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()
    )
