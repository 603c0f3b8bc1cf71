"""The review as Markdown: a summary, then one section per dist/ folder (environments first)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from review import capacity, diagram, flows, objects
from review.gate import Verdict
from review.objects import FolderDiff, Key
from review.snapshot import Snapshot

MARKER = "<!-- mlplatform-review -->"
RAW_DIFF_LINES = 400  # per folder; the rest is counted, not shown (a comment holds at most 65,536 chars)
NON_ENVIRONMENTS = ("argocd", "cluster-policies")
NEAR_QUOTA_PERCENT = 90  # at maximum scale, this share of a quota or more is flagged


@dataclass
class Folder:
    name: str
    base: dict[str, str]
    head: dict[str, str]
    diff: FolderDiff
    base_objects: dict[Key, dict[str, Any]]
    head_objects: dict[Key, dict[str, Any]]
    opened: list[flows.Flow]
    closed: list[flows.Flow]

    @property
    def environment(self) -> bool:
        return self.name not in NON_ENVIRONMENTS

    @property
    def unchanged(self) -> bool:
        return self.base == self.head

    def counts(self) -> str:
        d = self.diff
        return f"{len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed"


def folders(
    base: Snapshot, head: Snapshot, peers: Callable[[str], dict[str, dict[str, Any]]]
) -> list[Folder]:
    """Each folder of dist/ compared; `peers(env)` (the spec's, by name) only name the ends of flows."""
    names = sorted(base.keys() | head.keys(), key=lambda n: (n in NON_ENVIRONMENTS, n))
    out = []
    for name in names:
        b, h = base.get(name, {}), head.get(name, {})
        bo, ho = objects.load(b), objects.load(h)
        opened: list[flows.Flow] = []
        closed: list[flows.Flow] = []
        if b != h and name not in NON_ENVIRONMENTS:
            named = peers(name)
            was, now = flows.allowed(bo, named), flows.allowed(ho, named)
            opened, closed = sorted(now - was), sorted(was - now)
        out.append(Folder(name, b, h, objects.diff(b, h), bo, ho, opened, closed))
    return out


def _subject(key: Key) -> str:
    kind, _ns, name = key
    return f"{kind} `{name}`"


def summary(found: list[Folder], verdict: Verdict) -> list[str]:
    """One line per folder and one for the gate: the commit message of a promotion, the comment's head."""
    lines = []
    for f in found:
        if f.unchanged:
            lines.append(f"- {f.name}: no change")
            continue
        extra = f"; flows {len(f.opened)} opened, {len(f.closed)} closed" if f.environment else ""
        lines.append(f"- {f.name}: {f.counts()}{extra}")
    lines.append(f"- gate: {_gate_line(verdict)}")
    return lines


def _gate_line(v: Verdict) -> str:
    if not v.ran:
        return f"not run ({v.error})"
    used = {f.waiver for f in v.waived}
    expiring = [w for w in v.listed if w.id in used and v.expiring(w)]
    state = "passes" if not v.findings else f"FAILS with {len(v.findings)} violation(s)"
    warn = f", {len(expiring)} expiring within 14 days" if expiring else ""
    return f"{state}; {len(used)} waiver(s) in use{warn}"


def render(found: list[Folder], verdict: Verdict, *, base_label: str) -> str:
    out = [
        MARKER,
        f"## What this change does, per environment (dist/ at `{base_label}` → this branch)",
        "",
        *summary(found, verdict),
        "",
    ]
    for f in found:
        out += _folder(f, verdict, found)
    return "\n".join(out).rstrip() + "\n"


def _folder(f: Folder, verdict: Verdict, found: list[Folder]) -> list[str]:
    head = f"### `dist/{f.name}/`"
    failing = verdict.failing(f.name)
    if f.unchanged and not failing:
        return [f"{head}: no change.", ""]
    out = [head, ""]
    out += _objects(f)
    if f.environment:
        out += _capacity(f)
        out += _flows(f)
    out += _gate(f, verdict)
    if f.environment:
        out += _argocd_for(f.name, found)
        out += _diagram(f)
    elif f.name == "argocd":
        out += _argocd_table(f)
    out += _raw(f)
    return out


def _objects(f: Folder) -> list[str]:
    d = f.diff
    if f.unchanged:
        return ["**Objects:** no change.", ""]
    out = [f"**Objects:** {f.counts()}.", ""]
    if not (d.added or d.removed or d.changed):
        return [*out[:-1], f"**Objects:** none changed; other files: {', '.join(d.other_files)}.", ""]
    out += ["| | object | what changed |", "|---|---|---|"]
    for key in d.added:
        out.append(f"| added | {_subject(key)} | added{_added_detail(f.head_objects[key])} |")
    for key in d.removed:
        out.append(f"| removed | {_subject(key)} | removed |")
    for key, what in d.changed.items():
        out.append(
            f"| changed | {_subject(key)} | {'<br>'.join(_cell(w) for w in what) or 'formatting only'} |"
        )
    if d.other_files:
        out.append(f"\nAlso changed: {', '.join(f'`{n}`' for n in d.other_files)}.")
    return [*out, ""]


def _added_detail(obj: dict[str, Any]) -> str:
    """What a reviewer checks first on a new object: its images and scale, or a NetworkPolicy's rules."""
    fa = objects.facets(obj)
    shown = [f"{k}: {v}" for k, v in fa.values.items() if "image" in k or k in ("replicas", "autoscaling")]
    shown += sorted(r for r in fa.sets.get("rule", set()) if r.startswith(("ingress", "egress")))
    return (": " + "<br>".join(_cell(s) for s in shown)) if shown else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _capacity(f: Folder) -> list[str]:
    a, b = capacity.of(f.base_objects), capacity.of(f.head_objects)
    out = [
        "**Capacity** (all workloads at their minimum and at their maximum scale, rollout surge included):",
        "",
        "| | minimum | maximum | quota | max vs quota | change of max |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for key in capacity.ROWS:
        lo, hi, was = b.minimum[key], b.maximum[key], a.maximum[key]
        quota = b.quota.get(key)
        if not hi and not was and not quota:
            continue
        if quota is None:
            fit = "no quota"
        elif hi > quota:
            fit = f"❌ over by {capacity.show(key, hi - quota)}"
        else:
            share = hi / quota * 100 if quota else Decimal(0)
            fit = f"{'⚠️ ' if share >= NEAR_QUOTA_PERCENT else ''}{share:.0f}%"
        delta = hi - was
        sign = "+" if delta > 0 else "-" if delta < 0 else ""
        change = f"{sign}{capacity.show(key, abs(delta))}" if delta else "none"
        q = capacity.show(key, quota) if quota is not None else "none"
        out.append(
            f"| {key} | {capacity.show(key, lo)} | {capacity.show(key, hi)} | {q} | {fit} | {change} |"
        )
    return [*out, ""]


def _flows(f: Folder) -> list[str]:
    opened, closed = f.opened, f.closed
    if not opened and not closed:
        return ["**Network flows:** none opened or closed (computed from the NetworkPolicies).", ""]
    out = ["**Network flows** (computed from the NetworkPolicies):", ""]
    out += [f"- 🔓 opened: {x.describe()}" for x in opened]
    out += [f"- 🔒 closed: {x.describe()}" for x in closed]
    return [*out, ""]


def _gate(f: Folder, v: Verdict) -> list[str]:
    if not v.ran:
        return [f"**Gate:** not run: {v.error}.", ""]
    failing = v.failing(f.name)
    out = []
    if failing:
        out += [f"**Gate:** ❌ {len(failing)} violation(s):", "", "| rule | object | why |", "|---|---|---|"]
        for x in failing:
            where = f"{x.file}:{x.line}" if x.line else x.file
            msg = x.message if len(x.message) < 300 else x.message[:297] + "..."
            out.append(f"| `{x.rule}` | {x.subject} ({where}) | {_cell(msg)} |")
    else:
        out.append("**Gate:** ✅ passes.")
    waived = [x for x in v.waived if x.environment == f.name]
    listed = {w.id: w for w in v.listed}
    if waived:
        out += [
            "",
            "Waivers in use:",
            "",
            "| rule | object | owner | expires | reason |",
            "|---|---|---|---|---|",
        ]
        for x in waived:
            w = listed.get(x.waiver)
            if w is None:
                out.append(f"| `{x.rule}` | {x.subject} | ? | ? | {x.waiver} |")
                continue
            days = (w.expires - v.today).days
            flag = f" ⚠️ in {days} day(s)" if v.expiring(w) else ""
            expires = f"{w.expires.isoformat()}{flag}"
            out.append(f"| `{w.rule}` | {x.subject} | {w.owner} | {expires} | {_cell(w.reason)} |")
    return [*out, ""]


def _sync(obj: dict[str, Any] | None) -> str:
    if obj is None:
        return "none"
    return objects.facets(obj).values["sync"]


def _argocd_for(env: str, found: list[Folder]) -> list[str]:
    argocd = next((f for f in found if f.name == "argocd"), None)
    if argocd is None:
        return []
    path = f"dist/{env}"

    def app(objs: dict[Key, dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
        for (kind, _ns, name), obj in sorted(objs.items()):
            if kind == "Application" and ((obj.get("spec") or {}).get("source") or {}).get("path") == path:
                return name, obj
        return None

    now, was = app(argocd.head_objects), app(argocd.base_objects)
    if now is None:
        return [f"**Argo CD:** no Application syncs `{path}`.", ""]
    mode = _sync(now[1])
    before = f" (was: {_sync(was[1])})" if was and _sync(was[1]) != mode else ""
    waits = "syncs automatically" if mode.startswith("automatic") else "waits for a manual sync"
    return [f"**Argo CD:** Application `{now[0]}` {waits} ({mode}){before}.", ""]


def _argocd_table(f: Folder) -> list[str]:
    out = ["**Argo CD Applications:**", "", "| Application | path | sync |", "|---|---|---|"]
    for (kind, _ns, name), obj in sorted(f.head_objects.items()):
        if kind == "Application":
            path = ((obj.get("spec") or {}).get("source") or {}).get("path", "")
            out.append(f"| `{name}` | `{path}` | {_sync(obj)} |")
    return [*out, ""]


def _diagram(f: Folder) -> list[str]:
    text, changed = diagram.marked(f.base.get("ARCHITECTURE.md"), f.head.get("ARCHITECTURE.md"))
    if not text:
        return []
    legend = "green: added, yellow: changed, red dashed: removed" if changed else "unchanged"
    return [f"<details><summary>Diagram ({legend})</summary>", "", text, "", "</details>", ""]


def _raw(f: Folder) -> list[str]:
    lines: list[str] = []
    for name in sorted(f.base.keys() | f.head.keys()):
        a, b = f.base.get(name), f.head.get(name)
        if a == b:
            continue
        lines += difflib.unified_diff(
            (a or "").splitlines(),
            (b or "").splitlines(),
            f"a/dist/{f.name}/{name}" if a is not None else "/dev/null",
            f"b/dist/{f.name}/{name}" if b is not None else "/dev/null",
            lineterm="",
        )
    if not lines:
        return []
    more = len(lines) - RAW_DIFF_LINES
    shown = lines[:RAW_DIFF_LINES] + (
        [f"... {more} more line(s): see the pull request's files"] if more > 0 else []
    )
    body = "\n".join(shown).replace("```", "` ` `")
    return [
        f"<details><summary>Raw diff ({len(lines)} lines)</summary>",
        "",
        "```diff",
        body,
        "```",
        "",
        "</details>",
        "",
    ]
