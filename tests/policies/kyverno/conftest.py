"""The real Kyverno CLI, run the way the check runs it, as a fixture for the Kyverno tests."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from policy_check import kyverno

REPO = Path(__file__).resolve().parents[3]
KYVERNO = REPO / ".tools" / "bin" / "kyverno"
SHIPPED = REPO / "dist" / "cluster-policies"


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def managed(name: str) -> dict[str, Any]:
    return namespace(name, {"mlplatform.io/managed": "true"})


def apply(
    tmp: Path,
    policies: list[Path],
    objects: list[dict[str, Any]],
    namespaces: list[dict[str, Any]],
    exceptions: list[Path] | None = None,
) -> list[dict[str, Any]]:
    """Every result of `kyverno apply` of the policies over the objects (one file per object)."""
    tmp.mkdir(parents=True, exist_ok=True)
    resources = []
    for i, obj in enumerate(objects):
        path = tmp / f"object-{i:04}.yaml"
        path.write_text(yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")
        resources.append(path)
    values = tmp / "values.yaml"
    values.write_text(yaml.safe_dump(kyverno.values_document(namespaces)), encoding="utf-8")
    cmd = kyverno.command(KYVERNO, policies, resources, values)
    for e in exceptions or []:
        cmd += ["--exceptions", str(e)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    return kyverno.parse_report(proc.stdout, proc.stderr, proc.returncode)


def pinned(key: str) -> str:
    """A value of tools/versions.env."""
    for line in (REPO / "tools/versions.env").read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip()
    raise LookupError(f"{key} is not in tools/versions.env")


def go_module(name: str, version: str) -> Path:
    """The module's folder in the Go module cache (tools/setup/go-module-dir.sh downloads it if needed)."""
    out = subprocess.run(
        [str(REPO / "tools/setup/go-module-dir.sh"), name, version],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    if out.returncode != 0:
        pytest.fail(f"cannot fetch {name}@{version}: {out.stderr.strip()}")
    return Path(out.stdout.strip())


def pinned_module(key: str) -> Path:
    """The module <KEY>_MODULE at <KEY>_VERSION of tools/versions.env."""
    return go_module(pinned(f"{key}_MODULE"), pinned(f"{key}_VERSION"))


def shipped_policies() -> list[Path]:
    return sorted(p for p in SHIPPED.glob("*.yaml") if not p.name.startswith("policyexception-"))


def by_result(results: list[dict[str, Any]], status: str) -> set[tuple[str, str, str]]:
    """(policy, kind, name) of every result with that status."""
    return {
        (str(r["policy"]), str(res["kind"]), str(res["name"]))
        for r in results
        if r.get("result") == status
        for res in r.get("resources") or []
    }


@dataclass(frozen=True)
class Cli:
    """What the Kyverno tests share (a fixture: test modules cannot import each other here)."""

    repo = REPO
    shipped = SHIPPED
    apply = staticmethod(apply)
    namespace = staticmethod(namespace)
    managed = staticmethod(managed)
    shipped_policies = staticmethod(shipped_policies)
    by_result = staticmethod(by_result)
    pinned = staticmethod(pinned)
    go_module = staticmethod(go_module)
    pinned_module = staticmethod(pinned_module)


@pytest.fixture(scope="session")
def cli() -> Cli:
    if not KYVERNO.exists():
        pytest.fail(f"{KYVERNO} is missing; run make setup")
    return Cli()
