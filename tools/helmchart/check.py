"""The chart's proof: for every environment the gate checks (dist/<env>/), `helm template` with that
environment's values file gives the same objects, compared object by object after normalising key order;
and `helm lint --strict` is clean with the default values and with each environment's.

The expected objects are dist/'s files as the gate reads them; the environments are the gate's own list
(policy_check.dist.environments). Nothing here reads the generator's plan of the chart.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from policy_check.dist import environments

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


class ChartError(Exception):
    """helm failed, or the chart does not give back dist/."""


@dataclass(frozen=True)
class Compared:
    environment: str
    values: str
    objects: int
    problems: tuple[str, ...]


def chart_of(dist: Path) -> Path:
    """The one chart under dist/helm/."""
    charts = sorted(p.parent for p in (dist / "helm").glob("*/Chart.yaml"))
    if len(charts) != 1:
        raise ChartError(f"{dist / 'helm'}: expected one chart (<platform>/Chart.yaml), found {len(charts)}")
    return charts[0]


def values_file(chart: Path, environment: str) -> Path:
    return chart / f"values-{environment.replace('/', '-')}.yaml"


def key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (
        str(obj.get("apiVersion")),
        str(obj.get("kind")),
        str(meta.get("namespace", "")),
        str(meta["name"]),
    )


def expected(folder: Path) -> dict[Key, dict[str, Any]]:
    """Every object of one environment's dist/ folder."""
    found: dict[Key, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.yaml")):
        for obj in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_LOADER):
            if obj:
                found[key(obj)] = obj
    return found


def template(helm: Path, chart: Path, values: Path, *extra: str) -> dict[Key, dict[str, Any]]:
    """The objects `helm template` renders with one values file."""
    out = _helm(helm, "template", chart.name, str(chart), "-f", str(values), *extra)
    found: dict[Key, dict[str, Any]] = {}
    for obj in yaml.load_all(out, Loader=_LOADER):
        if obj:
            if key(obj) in found:
                raise ChartError(f"{values.name}: helm template renders {key(obj)} twice")
            found[key(obj)] = obj
    return found


def compare(want: dict[Key, dict[str, Any]], got: dict[Key, dict[str, Any]]) -> list[str]:
    """One line per object that is missing, extra or different (naming the first field that differs)."""
    problems = [f"missing {'/'.join(k[1:])}" for k in sorted(want.keys() - got.keys())]
    problems += [f"extra {'/'.join(k[1:])}" for k in sorted(got.keys() - want.keys())]
    for k in sorted(want.keys() & got.keys()):
        where = first_difference(want[k], got[k])
        if where is not None:
            problems.append(f"{'/'.join(k[1:])}: differs at {where}")
    return problems


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """JSON pointer of the first field where `a` and `b` differ (types included), None if equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(a.keys() | b.keys()):
            if k not in a or k not in b:
                return f"{path}/{k}"
            found = first_difference(a[k], b[k], f"{path}/{k}")
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} (length {len(a)} != {len(b)})"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}/{i}")
            if found is not None:
                return found
        return None
    return None if type(a) is type(b) and a == b else f"{path or '/'} ({a!r} != {b!r})"


def check(helm: Path, dist: Path) -> list[Compared]:
    """Compare every environment, and lint the chart; raises ChartError for a failed helm run."""
    chart = chart_of(dist)
    results = []
    listed = environments(dist)
    for env in listed:
        values = values_file(chart, env)
        if not values.is_file():
            raise ChartError(f"{values}: no values file for the environment dist/{env}/")
        want = expected(dist / env)
        results.append(
            Compared(env, values.name, len(want), tuple(compare(want, template(helm, chart, values))))
        )
    stray = {p.name for p in chart.glob("values-*.yaml")} - {values_file(chart, e).name for e in listed}
    if stray:
        raise ChartError(f"{chart}: values files of no environment in dist/: {', '.join(sorted(stray))}")
    lint(helm, chart, [values_file(chart, e) for e in listed])
    return results


def lint(helm: Path, chart: Path, values: list[Path]) -> None:
    """`helm lint --strict` with the default values, then with each environment's."""
    for extra in [[], *(["-f", str(v)] for v in values)]:
        _helm(helm, "lint", "--strict", str(chart), *extra)


def package(helm: Path, chart: Path, out: Path, commit: str) -> Path:
    """`helm package` with the commit added to the version's build metadata: 1.0.0+<digest>.g<commit>."""
    version = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))["version"]
    full = f"{version}.g{commit}" if "+" in version else f"{version}+g{commit}"
    out.mkdir(parents=True, exist_ok=True)
    _helm(helm, "package", str(chart), "--version", full, "--destination", str(out))
    return out / f"{chart.name}-{full}.tgz"


def _helm(helm: Path, *args: str) -> str:
    if not helm.is_file():
        raise ChartError(
            f"{helm} is missing; run tools/setup/renderers.sh (make helm and make test-setup do)"
        )
    run = subprocess.run([str(helm), *args], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        lines = (run.stderr or run.stdout).strip().splitlines()
        raise ChartError(f"helm {args[0]} failed: {' / '.join(line.strip() for line in lines[:20])}")
    return run.stdout
