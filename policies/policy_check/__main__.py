"""python -m policy_check --reports reports [--env NAME] [--dist DIR] [--no-drift]

Runs Kyverno and conftest over every environment in dist/ (plus dist/argocd and dist/cluster-policies),
compares the repository's dist/ with a fresh synth (drift), prints a summary per environment and rule, writes
reports/policy-check.junit.xml and reports/policy-check.sarif, and exits 1 on any violation, drift, expired
or unused waiver (2 on bad input).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from mlplatform import waivers
from policy_check import (
    cache,
    crd_schema,
    declared,
    dist,
    drift,
    engines,
    reports,
    rule_docs,
    runner,
)
from policy_check.findings import Finding
from policy_check.synth_cache import SynthCache

REPO_ROOT = Path(__file__).resolve().parents[2]
#: What bad input (dist/, the waivers, the spec, the tools) raises: one line each, exit 2.
INPUT_ERRORS = (
    dist.DistError,
    waivers.WaiverError,
    engines.EngineError,
    declared.SpecError,
    crd_schema.CrdError,
    drift.DriftError,
    rule_docs.RuleDocError,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m policy_check", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    p.add_argument("--reports", type=Path, required=True, help="folder for the JUnit XML and SARIF files")
    p.add_argument("--env", help="check only this environment")
    p.add_argument(
        "--dist", type=Path, default=REPO_ROOT / "dist", help="the dist/ folder (default: the repo's)"
    )
    p.add_argument("--exceptions", type=Path, default=REPO_ROOT / "policies" / "exceptions.yaml")
    p.add_argument(
        "--tools", type=Path, default=REPO_ROOT / ".tools" / "bin", help="where kyverno and conftest are"
    )
    p.add_argument(
        "--cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse the findings of folders unchanged since a run with the same policies and tools, and the "
        f"drift check's synth of unchanged inputs (kept in {cache.default_dir()})",
    )
    p.add_argument("--jobs", type=int, default=None, help="engine processes at once (default: the CPUs)")
    p.add_argument(
        "--drift",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compare dist/ with a fresh synth of overlays/ (default: on for the repository's own dist/)",
    )
    p.add_argument(
        "--github-annotations",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("GITHUB_ACTIONS") == "true",
        help="print ::error workflow commands (default: on when GITHUB_ACTIONS=true)",
    )
    return p.parse_args(argv)


def tools_at(bin_dir: Path) -> engines.Tools:
    kyverno, conftest = bin_dir / "kyverno", bin_dir / "conftest"
    for tool in (kyverno, conftest):
        if not tool.exists():
            raise engines.EngineError(f"{tool} is missing; run `make setup`")
    policies = sorted((REPO_ROOT / "policies" / "kyverno").glob("*/*.yaml"))
    policies = [p for p in policies if p.stem == p.parent.name]
    return engines.Tools(kyverno, conftest, policies, REPO_ROOT / "policies" / "conftest")


def print_summary(outcome: runner.Outcome) -> None:
    counts = Counter((f.environment, f.rule, f.engine) for f in outcome.findings)
    waived = Counter((f.environment, f.rule) for f in outcome.waived)
    for env in sorted(outcome.rules):
        print(f"== {env}")
        for rule in outcome.rules[env]:
            by_engine = {e: n for (en, r, e), n in counts.items() if en == env and r == rule}
            w = waived.get((env, rule), 0)
            state = "FAIL" if by_engine else "ok"
            detail = ", ".join(f"{e}: {n}" for e, n in sorted(by_engine.items()))
            extra = f" ({w} waived)" if w else ""
            print(f"  {state:4} {rule}{': ' + detail if detail else ''}{extra}")
    if outcome.findings:
        print(f"\n{len(outcome.findings)} violation(s):")
        for f in outcome.findings:
            print(f"  {f.describe()}")
    print(f"\npolicy check: {len(outcome.findings)} violation(s), {len(outcome.waived)} waived finding(s)")


def add_drift(outcome: runner.Outcome, found: list[Finding]) -> None:
    """Drift findings join the outcome; every folder compared lists the drift rule."""
    for folder in {*outcome.rules, *(f.environment for f in found)} - {runner.WAIVER_RULE}:
        rules = outcome.rules.setdefault(folder, [])
        if drift.RULE not in rules:
            rules.append(drift.RULE)
    outcome.findings = sorted([*outcome.findings, *found])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dist_dir = args.dist.resolve()
    check_drift = args.drift if args.drift is not None else dist_dir == (REPO_ROOT / "dist").resolve()
    synth = None
    try:
        tools = tools_at(args.tools)
        docs = rule_docs.load(REPO_ROOT, tools.kyverno_policies, tools.conftest_policies)
        synth_cache = SynthCache(cache.default_dir() / "synth") if args.cache else None
        # the fresh synth runs beside the engines
        synth = drift.start(REPO_ROOT, args.env, synth_cache) if check_drift else None
        outcome = runner.run(
            repo_root=REPO_ROOT,
            dist_dir=dist_dir,
            tools=tools,
            waiver_file=args.exceptions,
            only_env=args.env,
            jobs=args.jobs,
            cache=cache.Cache(cache.default_dir(), REPO_ROOT, [tools.kyverno, tools.conftest])
            if args.cache
            else None,
        )
        if synth is not None:
            add_drift(outcome, drift.check(synth, dist_dir, args.env))
            synth = None
    except INPUT_ERRORS as err:
        print(f"policy check: error: {err}", file=sys.stderr)
        return 2
    finally:
        if synth is not None:
            synth.stop()
    print_summary(outcome)
    args.reports.mkdir(parents=True, exist_ok=True)
    reports.write_junit(args.reports / "policy-check.junit.xml", outcome.rules, outcome.findings)
    sarif = args.reports / "policy-check.sarif"
    reports.write_sarif(sarif, REPO_ROOT, outcome.findings, docs, rule_docs.help_base(REPO_ROOT))
    if args.github_annotations:
        print("\n".join(reports.github_annotations(REPO_ROOT, outcome.findings)))
    return 1 if outcome.findings else 0


if __name__ == "__main__":
    sys.exit(main())
