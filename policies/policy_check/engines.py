"""Runs the real Kyverno CLI and conftest binaries and turns their JSON into Findings."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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
    names: dict[str, list[str]] = {}
    for p in policies:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        names[doc["metadata"]["name"]] = [r["name"] for r in doc["spec"]["rules"]]
    return names


def start_kyverno(tools: Tools, folder: Folder, exceptions: Path | None) -> subprocess.Popen[str]:
    cmd = [str(tools.kyverno), "apply", *map(str, tools.kyverno_policies), "--policy-report"]
    cmd += ["--output-format", "json", "--remove-color"]
    for m in folder.manifests:
        cmd += ["--resource", str(m)]
    if exceptions is not None:
        cmd += ["--exceptions", str(exceptions)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kyverno_findings(proc: subprocess.Popen[str], folder: Folder, env: str) -> list[Finding]:
    out, err = proc.communicate()
    start = out.find("{")  # the CLI prints deprecation warnings before the report
    if start < 0:
        raise EngineError(
            f"kyverno apply on {folder.path} gave no report (exit {proc.returncode}): {err.strip()}"
        )
    report = json.loads(out[start:])
    findings = []
    for result in report.get("results") or []:
        status = result.get("result")
        if status not in ("fail", "error", "skip"):
            continue
        message = str(result.get("message", ""))
        waiver = ""
        if status == "skip":
            if "policy exception" not in message:
                continue
            waiver = message.rsplit("/", 1)[-1]
        for res in result.get("resources") or [{}]:
            kind, ns, name = res.get("kind", ""), res.get("namespace", ""), res.get("name", "")
            findings.append(
                Finding(
                    environment=env,
                    rule=str(result["policy"]),
                    file=folder.objects.get((kind, ns, name), ""),
                    kind=kind,
                    namespace=ns,
                    name=name,
                    engine="kyverno",
                    message=message.removeprefix("validation error: ").removeprefix("validation failure: "),
                    waiver=waiver,
                )
            )
    return findings


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
                    )
                )
    return findings
