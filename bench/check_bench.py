"""Where the policy check's time goes, and how it grows with the spec.

For each size N in `--services` (default 10,100) it grows the spec with the synth bench's `make_spec`
(bench/spec_growth.py: N copies of `inference` in every environment; with `--clusters K`, K clusters: dev
and stage on one each, prod on the rest, in dist/prod/<cluster>/), synthesizes it, and runs the gate:

- total: `python -m policy_check` as `make check` runs it, cold (no cache), wall and CPU time (the gate and
  its engine processes); then warm (a second run, the cache of unchanged environments in use);
- per engine, one after the other in this process: the gate's own Python (reading dist/ and overlays/,
  the data files), the CRD schema check, Kyverno and conftest (wall, and the CPU of their processes);
- with `--rules` (`--rules conftest`: conftest only), per rule: conftest with one rule file's findings
  (the other rules' switched off; the input's parse and the other packages are in every number), Kyverno
  with one policy at a time.

`--ref REV` also times the gate of another revision (its policies/ and constructs/ from git) on the same
trees in the same run, for before/after ratios on a busy shared machine, and checks that both give the same
findings. Everything is written under /dev/shm when there is one (see synth_bench.py: else the disk is timed).
Usage: .venv/bin/python bench/check_bench.py [--services 10,100] [--clusters K] [--review] [--rules]
       [--ref REV]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "policies"))
sys.path.insert(0, str(REPO / "constructs"))

from policy_check import __main__ as cli  # noqa: E402
from policy_check import crd_schema, declared, dist, engines, kyverno, runner  # noqa: E402

SYNTH = """
import sys
from pathlib import Path
sys.path.insert(0, {bench!r})
from spec_growth import make_spec
from mlplatform.synth import synthesize
root = Path({root!r})
make_spec(root, {n}, {clusters})
synthesize(root, out=root / "dist")
"""


@dataclass(frozen=True)
class Cost:
    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:7.2f} s wall {self.cpu:7.2f} s CPU"


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[Cost, Any]:
    """Wall time, and the CPU time of this process plus the child processes `fn` waited for."""
    wall, own, kids = time.perf_counter(), time.process_time(), children_cpu()
    result = fn()
    cpu = time.process_time() - own + children_cpu() - kids
    return Cost(time.perf_counter() - wall, cpu), result


def scratch() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def synthesize(spec: Path, n: int, clusters: int | None) -> Cost:
    code = SYNTH.format(bench=str(REPO / "bench"), root=str(spec), n=n, clusters=clusters)
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    cost, proc = timed(
        lambda: subprocess.run(
            [sys.executable, "-O", "-c", code], capture_output=True, text=True, env=env, check=False
        )
    )
    if proc.returncode != 0:
        sys.exit(f"synth of {n} services failed:\n{proc.stderr[-4000:]}")
    return cost


# the gate's code: its policies, and the generator its drift check runs
CODE = ("policies", "constructs", "imports", "main.py", "cdk8s.yaml")


def code_tree(where: Path, spec: Path, ref: str | None) -> Path:
    """A repository root holding the gate's code (this tree's, or `ref`'s) and the grown spec's files."""
    where.mkdir(parents=True)
    if ref is None:
        for part in CODE:
            if (REPO / part).is_dir():
                shutil.copytree(REPO / part, where / part, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(REPO / part, where / part)
    else:
        archive = subprocess.run(
            ["git", "archive", ref, *CODE], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    for part in ("overlays", "apps", "dist"):
        (where / part).symlink_to(spec / part)
    for part in ("tools", ".tools", "node_modules"):
        (where / part).symlink_to(REPO / part)
    return where


def gate(root: Path, reports: Path, *extra: str) -> tuple[Cost, dict[str, Any]]:
    # its own cache folder (empty before the first run: that run is cold)
    cache = root / "cache"
    env = {
        **os.environ,
        "PYTHONPATH": f"{root / 'policies'}:{root / 'constructs'}",
        "XDG_CACHE_HOME": str(cache),
    }
    cmd = [sys.executable, "-m", "policy_check", "--reports", str(reports), "--no-github-annotations", *extra]
    cost, proc = timed(lambda: subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env))
    if proc.returncode not in (0, 1):
        sys.exit(f"policy check in {root} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    # messages name the overlay files by path: the same for both code trees, so revisions compare
    text = (reports / "policy-check.sarif").read_text(encoding="utf-8")
    sarif = json.loads(text.replace(str(root), "<repo>"))
    return cost, sarif


def findings_of(sarif: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (str(r.get("ruleId")), str(r["message"]["text"])) for run in sarif["runs"] for r in run["results"]
    )


def _data_file(folder: Path, name: str) -> Path:
    """Where one dist/ folder's conftest data goes (a folder such as infrastructure/<cluster> flattened)."""
    return folder / f"{name.replace('/', '--')}.json"


def engine_breakdown(spec: Path, rules: str | None) -> None:
    """The gate's steps one after the other, each timed on its own (this tree's code)."""
    tools = cli.tools_at(REPO / ".tools" / "bin")
    dist_dir = spec / "dist"
    envs = dist.environments(dist_dir)
    folders = [*envs, *dist.argocd_folders(dist_dir)]
    repo_url = declared.repo_url(spec / "overlays")

    def python_part() -> tuple[dict[str, dist.Folder], dict[str, Any]]:
        loaded = {name: dist.load_folder(dist_dir, name) for name in folders}
        return loaded, declared.for_environments(spec / "overlays", envs)

    cost, (loaded, specs) = timed(python_part)
    print(f"    gate's Python (read dist/ and overlays/)   {cost}")
    schemas = crd_schema.Schemas(REPO)
    cost, _ = timed(lambda: [crd_schema.findings(schemas, n, loaded[n].documents) for n in folders])
    print(f"    CRD schema                                 {cost}")
    with tempfile.TemporaryDirectory() as tmp:
        on_envs = [loaded[n] for n in envs]
        cost, _ = timed(
            lambda: kyverno.start(tools.kyverno, tools.kyverno_policies, on_envs, [], Path(tmp)).findings()
        )
        print(f"    Kyverno (all policies)                     {cost}")
        dist_paths = sorted(f"dist/{p.name}" for p in dist_dir.iterdir() if p.is_dir())
        for n in folders:
            data = runner.conftest_data(n, loaded[n], specs.get(n), (dist_paths, repo_url), [])
            _data_file(Path(tmp), n).write_text(json.dumps(data, sort_keys=True), encoding="utf-8")

        def conftest(policies: Path) -> None:
            t = engines.Tools(tools.kyverno, tools.conftest, tools.kyverno_policies, policies)
            for n in folders:
                engines.conftest_findings(
                    engines.start_conftest(t, loaded[n], _data_file(Path(tmp), n)), loaded[n], n
                )

        cost, _ = timed(lambda: conftest(tools.conftest_policies))
        print(f"    conftest (all rules)                       {cost}")
        if not rules:
            return

        def one_policy(policy: Path) -> list[Any]:
            return kyverno.start(tools.kyverno, [policy], on_envs, [], Path(tmp)).findings()

        for policy in tools.kyverno_policies if rules == "all" else []:
            cost, _ = timed(functools.partial(one_policy, policy))
            print(f"      kyverno {policy.stem:36} {cost}")
        src = tools.conftest_policies
        for rego in sorted(src.glob("*/*.rego")):
            if rego.name.endswith("_test.rego") or rego.name == "deny.rego" or rego.parent.name == "lib":
                continue
            # every file of the package (rules use each other's helpers), but only this one's findings
            one = Path(tmp) / f"rule-{rego.parent.name}-{rego.stem}"
            shutil.copytree(src, one, ignore=shutil.ignore_patterns("*_test.rego"))
            for other in (one / rego.parent.name).glob("*.rego"):
                if other.name not in (rego.name, "deny.rego"):
                    text = other.read_text(encoding="utf-8")
                    other.write_text(
                        text.replace("findings contains", "findings_off contains"), encoding="utf-8"
                    )
            label = f"{rego.parent.name}/{rego.stem}"
            cost, _ = timed(functools.partial(conftest, one))
            print(f"      conftest {label:35} {cost}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--services", default="10,100", help="spec sizes, comma-separated")
    parser.add_argument(
        "--rules", nargs="?", const="all", choices=("all", "conftest"), help="also time each rule on its own"
    )
    parser.add_argument(
        "--clusters",
        type=int,
        help="grow the fleet to this many clusters (prod runs on all but dev's and stage's)",
    )
    parser.add_argument("--ref", help="also time this revision's gate on the same trees")
    parser.add_argument(
        "--review", action="store_true", help="also time `make review` of a one-service change"
    )
    parser.add_argument("--no-breakdown", action="store_true", help="only the totals")
    args = parser.parse_args()
    sizes = [int(n) for n in args.services.split(",")]
    totals: dict[int, Cost] = {}
    with tempfile.TemporaryDirectory(dir=scratch()) as tmp:
        for n in sizes:
            spec = Path(tmp) / f"spec-{n}"
            synth = synthesize(spec, n, args.clusters)
            files = sum(1 for p in (spec / "dist").rglob("*") if p.is_file())
            folders = len(dist.environments(spec / "dist"))  # an environment's, or each of its clusters'
            print(f"{n} services x {folders} clusters: {files} files")
            print(f"  synth                                        {synth}")
            new = code_tree(Path(tmp) / f"code-{n}", spec, None)
            reports = Path(tmp) / f"reports-{n}"
            cold, found = gate(new, reports)
            totals[n] = cold
            print(f"  gate, cold                                   {cold}")
            if has_cache(new):
                warm, again = gate(new, reports)
                print(f"  gate, warm (cache of unchanged environments) {warm}")
                if findings_of(again) != findings_of(found):
                    sys.exit("the warm run's findings differ from the cold run's")
                # a pull request that touches one environment: only that folder is checked again
                touched = sorted((spec / "dist" / "dev").glob("*.yaml"))[0]
                original = touched.read_bytes()
                touched.write_bytes(original + b"# touched\n")
                one, _ = gate(new, reports)
                touched.write_bytes(original)
                print(f"  gate, dev changed (the rest cached)          {one}")
            if args.review:
                reviewed = review(new, spec, Path(tmp) / f"r-{n}")
                print(f"  make review, one prod service changed       {reviewed}")
            if args.ref:
                old = code_tree(Path(tmp) / f"ref-{n}", spec, args.ref)
                before, theirs = gate(old, Path(tmp) / f"reports-ref-{n}")
                same = "same findings" if findings_of(theirs) == findings_of(found) else "FINDINGS DIFFER"
                for sign, only in (
                    ("-", set(findings_of(theirs)) - set(findings_of(found))),
                    ("+", set(findings_of(found)) - set(findings_of(theirs))),
                ):
                    for rule, text in sorted(only):
                        print(f"    {sign} {rule}: {text}")
                print(f"  gate at {args.ref:12} cold                  {before} ({same})")
            print(f"  findings: {len(findings_of(found))}")
            if not args.no_breakdown:
                print("  per engine, one after the other:")
                engine_breakdown(spec, args.rules)
        if len(sizes) > 1:
            a, b = sizes[0], sizes[-1]
            print(
                f"gate cold {a} -> {b} services: x{totals[b].wall / totals[a].wall:.1f} wall, "
                f"x{totals[b].cpu / totals[a].cpu:.1f} CPU for x{b / a:.0f} services"
            )


def review(root: Path, spec: Path, where: Path) -> Cost:
    """`make review` of a pull request that raises one prod service's maximum (in every prod cluster's
    folder): the grown tree committed in a git repository of its own, the change made to its dist/ as a
    synth would make it, then `python -m review --base HEAD`, whose gate uses the cache of the gate runs
    above (`make check` before `make review`, as CI runs them)."""
    repo = where / "review-repo"
    repo.mkdir(parents=True)
    for part in ("overlays", "dist"):
        shutil.copytree(spec / part, repo / part)
    (repo / "policies").mkdir()
    shutil.copy2(REPO / "policies" / "exceptions.yaml", repo / "policies" / "exceptions.yaml")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=bench", "-c", "user.email=b@example.com",
                 "commit", "-q", "-m", "base"]):  # fmt: skip
        subprocess.run(["git", *args], cwd=repo, check=True)
    changed = 0
    for file in sorted((repo / "dist" / "prod").rglob("scaledobject-model-000.yaml")):
        text = file.read_text(encoding="utf-8")
        top = max(int(line.split(":")[1]) for line in text.splitlines() if "maxReplicaCount:" in line)
        file.write_text(
            text.replace(f"maxReplicaCount: {top}", f"maxReplicaCount: {top + 1}"), encoding="utf-8"
        )
        changed += 1
    if not changed:
        sys.exit("review bench: no prod ScaledObject to change")
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'tools'}:{root / 'policies'}:{root / 'constructs'}",
        "XDG_CACHE_HOME": str(root / "cache"),
    }
    out = where / "review.md"
    cmd = [sys.executable, "-m", "review", "--repo", str(repo), "--base", "HEAD", "--out", str(out)]
    cost, proc = timed(lambda: subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env))
    if proc.returncode != 0:
        sys.exit(f"review failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return cost


def has_cache(root: Path) -> bool:
    """Whether this revision of the gate keeps a cache (a warm run differs from a cold one)."""
    return (root / "policies" / "policy_check" / "cache.py").is_file()


if __name__ == "__main__":
    main()
