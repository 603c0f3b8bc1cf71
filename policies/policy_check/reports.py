"""Machine-readable results: JUnit XML (one test case per environment and rule), SARIF 2.1.0 with physical
locations, and GitHub workflow annotations (`::error file=...,line=...::`)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from policy_check.findings import Finding


def write_junit(path: Path, rules: dict[str, list[str]], findings: list[Finding]) -> None:
    """`rules` maps each environment to the rule ids checked there (passing ones become passed cases)."""
    suites = ET.Element("testsuites", name="policy-check")
    for env in sorted(rules):
        mine = [f for f in findings if f.environment == env]
        suite = ET.SubElement(suites, "testsuite", name=env, tests=str(len(rules[env])))
        failed = 0
        for rule in rules[env]:
            case = ET.SubElement(suite, "testcase", classname=f"policy-check.{env}", name=rule)
            hits = [f for f in mine if f.rule == rule]
            if hits:
                failed += 1
                failure = ET.SubElement(case, "failure", message=f"{len(hits)} violation(s) of {rule}")
                failure.text = "\n".join(f.describe() for f in hits)
        suite.set("failures", str(failed))
    ET.indent(suites)
    path.write_text(ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n", encoding="utf-8")


def location(repo_root: Path, f: Finding) -> tuple[str, int] | None:
    """(repository path, line) of the finding, when that file exists; an environment-wide finding points at
    the environment's overlay."""
    candidates = [(f.path(), max(f.line, 1))] if f.file else []
    candidates.append((f"overlays/{f.environment}.yaml", 1))
    for uri, line in candidates:
        if (repo_root / uri).is_file():
            return uri, line
    return None


def write_sarif(path: Path, repo_root: Path, findings: list[Finding]) -> None:
    rule_ids = sorted({f.rule for f in findings})
    results = []
    for f in findings:
        result: dict[str, object] = {
            "ruleId": f.rule,
            "level": "error",
            "message": {"text": f.describe()},
        }
        where = location(repo_root, f)
        if where is not None:
            uri, line = where
            physical = {
                "artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"},
                "region": {"startLine": line},
            }
            result["locations"] = [{"physicalLocation": physical}]
        results.append(result)
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mlplatform-policy-check",
                        "rules": [{"id": r, "shortDescription": {"text": r}} for r in rule_ids],
                    }
                },
                "results": results,
            }
        ],
    }
    path.write_text(json.dumps(sarif, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _escape(text: str, *, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def github_annotations(repo_root: Path, findings: list[Finding]) -> list[str]:
    """One `::error` workflow command per finding, on the file and line of the object."""
    lines = []
    for f in findings:
        where = location(repo_root, f)
        props = f"title={_escape(f.rule, prop=True)}"
        if where is not None:
            props = f"file={_escape(where[0], prop=True)},line={where[1]},{props}"
        lines.append(f"::error {props}::{_escape(f.describe())}")
    return lines
