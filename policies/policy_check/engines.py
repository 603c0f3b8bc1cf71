"""Runs the real conftest binary and turns its JSON into Findings (Kyverno: policy_check.kyverno)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplatform import cluster_policies
from policy_check.dist import Folder
from policy_check.findings import Finding


class EngineError(Exception):
    """An engine could not run or gave output we cannot read."""


@dataclass(frozen=True)
class Tools:
    kyverno: Path
    conftest: Path
    kyverno_policies: list[Path]
    conftest_policies: Path


def kyverno_rule_names(policies: list[Path]) -> dict[str, list[str]]:
    """Policy name -> its rule names (a ValidatingPolicy is one rule, named like the policy)."""
    return {name: list(p.rules) for name, p in cluster_policies.load(policies).items()}


def start_conftest(tools: Tools, folder: Folder, data_file: Path) -> subprocess.Popen[str]:
    cmd = [str(tools.conftest), "test", "--all-namespaces", "--combine", "--no-color", "--no-fail"]
    cmd += ["--policy", str(tools.conftest_policies), "--data", str(data_file), "--output", "json"]
    # conftest needs at least one input; an empty list stands in for a folder without manifests
    inputs = [str(m) for m in folder.manifests] or [str(data_file)]
    return subprocess.Popen([*cmd, *inputs], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def conftest_findings(proc: subprocess.Popen[str], folder: Folder, env: str) -> list[Finding]:
    out, err = proc.communicate()
    try:
        results: list[dict[str, Any]] = json.loads(out)
    except json.JSONDecodeError as exc:
        raise EngineError(
            f"conftest on {folder.path} failed (exit {proc.returncode}): {err.strip()}"
        ) from exc
    findings = []
    for result in results:
        for level in ("failures", "warnings"):
            for item in result.get(level) or []:
                meta = item.get("metadata") or {}
                file = str(meta.get("file", ""))
                if file:
                    file = str(Path(file).relative_to(folder.path)) if Path(file).is_absolute() else file
                findings.append(
                    Finding(
                        environment=env,
                        rule=str(meta.get("rule", "conftest")),
                        file=Path(file).name if file else "",
                        kind=str(meta.get("kind", "")),
                        namespace=str(meta.get("namespace", "")),
                        name=str(meta.get("name", "")),
                        engine="conftest",
                        message=str(item.get("msg", "")),
                        waiver="waived" if level == "warnings" else "",
                        field=tuple(p for p in meta.get("path") or () if isinstance(p, str | int)),
                    )
                )
    return findings
