"""The promotion: refuse what must not be promoted, copy the build, re-synthesize, gate, review, commit.

It refuses, with one line each: a dirty working tree; an environment not in platform.yaml's `promotion:`;
a step against that order, or one that skips an environment unless `skip`; a source whose committed dist/
fails the gate; a target that already runs every digest (nothing to promote). On success the repository is
on a new branch `promote/<to>-<short digest>` holding one commit (the overlay and dist/), whose message is the
review's summary. Nothing is pushed and no network service is called.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from promote import copy
from review import gate, report, snapshot, spec


class Refused(Exception):
    """One line: why nothing was promoted."""


@dataclass
class Promoted:
    branch: str
    changes: list[copy.Change]
    review: str  # the Markdown review of the commit
    message: str  # the commit's message


def _order(repo: Path) -> list[str]:
    platform = yaml.safe_load((repo / "overlays" / "platform.yaml").read_text(encoding="utf-8")) or {}
    return [str(e) for e in platform.get("promotion") or []]


def check_order(order: list[str], source: str, target: str, skip: bool) -> None:
    for env in (source, target):
        if env not in order:
            raise Refused(
                f"{env!r} is not in overlays/platform.yaml promotion: [{', '.join(order)}]; "
                "allowed: an environment listed there"
            )
    i, j = order.index(source), order.index(target)
    if j <= i:
        raise Refused(f"{target} does not come after {source} in the promotion order {' -> '.join(order)}")
    if j > i + 1 and not skip:
        skipped = ", ".join(order[i + 1 : j])
        raise Refused(
            f"{source} -> {target} skips {skipped} (order {' -> '.join(order)}); pass --skip to mean it"
        )


def promote(
    repo: Path, source: str, target: str, *, services: list[str] | None = None, skip: bool = False
) -> Promoted:
    def git(*args: str) -> str:
        return snapshot.git(repo, *args).decode().strip()

    if git("status", "--porcelain"):
        raise Refused("the working tree has uncommitted changes; commit or stash them first")
    check_order(_order(repo), source, target, skip)
    overlays = repo / "overlays"
    platform = overlays / "platform.yaml"
    known = set((yaml.safe_load(platform.read_text(encoding="utf-8")) or {}).get("services") or {})
    unknown = sorted(set(services or []) - known)
    if unknown:
        raise Refused(
            f"no service {', '.join(unknown)} in overlays/platform.yaml; allowed: {', '.join(sorted(known))}"
        )
    before = gate.run(repo)
    if not before.ran:
        raise Refused(f"the gate did not run: {before.error}")
    failing = before.failing(source)
    if failing:
        raise Refused(
            f"{source}'s committed dist/ fails the gate ({len(failing)} violation(s), first: "
            f"{failing[0].rule} on {failing[0].subject}); fix {source} before promoting from it"
        )
    changes = copy.plan(overlays / f"{source}.yaml", overlays / f"{target}.yaml", services, platform)
    if not changes:
        raise Refused(f"{target} already runs every digest {source} runs; nothing to promote")
    head = git("rev-parse", "HEAD")
    copy.apply(overlays / f"{target}.yaml", changes, platform)
    try:
        _synth(repo)
        after = gate.run(repo)
        if after.failing(target):
            first = after.failing(target)[0]
            raise Refused(
                f"after the promotion {target} fails the gate ({len(after.failing(target))} violation(s), "
                f"first: {first.rule} on {first.subject}: {first.message[:200]})"
            )
        found = report.folders(
            snapshot.at_ref(repo, head), snapshot.working(repo), lambda env: spec.peers(overlays, env)
        )
        text = report.render(found, after, base_label=f"{head[:12]} ({source} -> {target})")
        main_digest = changes[0].after.split(":", 1)[1][:12]
        branch = f"promote/{target}-{main_digest}"
        what = ", ".join(
            sorted(
                {
                    c.field.split(".")[1] if c.field.startswith("services.") else c.field.split(".")[0]
                    for c in changes
                }
            )
        )
        message = "\n".join(
            [
                f"promote {source} -> {target}: {what} at {main_digest}",
                "",
                *(f"{target} {c.field}: {c.before[:19]} -> {c.after[:19]}" for c in changes),
                "",
                *report.summary(found, after),
            ]
        )
        git("switch", "-q", "-c", branch)
        git("add", "-A", "overlays", "dist")
        git("commit", "-q", "-m", message)
    except BaseException:
        git("checkout", "-q", head, "--", "overlays", "dist")
        git("clean", "-qfd", "dist")
        raise
    return Promoted(branch, changes, text, message)


def _synth(repo: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-O", str(repo / "main.py")], cwd=repo, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = [line for line in proc.stderr.splitlines() if line.strip()][-1:]
        raise Refused(f"the synth failed after the copy: {' '.join(tail)}")
