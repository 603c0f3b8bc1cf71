"""Machine-readable results: JUnit XML (one test case per environment and rule), SARIF 2.1.0 with physical
locations, and GitHub workflow annotations (`::error file=...,line=...::`)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from policy_check import rule_docs
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


def location(repo_root: Path, f: Finding) -> tuple[str, int, int] | None:
    """(repository path, first line, last line) of the finding, when that file exists: the offending field's
    line, or the object's lines; an environment-wide finding points at the environment's overlay."""
    candidates = [(f.path(), max(f.line, 1), max(f.end_line, f.line, 1))] if f.file else []
    candidates.append((f"overlays/{f.environment}.yaml", 1, 1))
    for uri, line, end in candidates:
        if (repo_root / uri).is_file():
            return uri, line, end
    return None


def origin_location(f: Finding) -> tuple[str, int, str] | None:
    """(overlay file, line, field path) of the spec field behind the finding, when it was traced."""
    where, _, field = f.origin.partition(": ")
    file, _, line = where.rpartition(":")
    return (file, int(line), field) if file and line.isdigit() else None


def _region(line: int, end: int) -> dict[str, int]:
    return {"startLine": line, "endLine": end} if end > line else {"startLine": line}


def _physical(uri: str, region: dict[str, int]) -> dict[str, object]:
    return {
        "physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"}, "region": region}
    }


def sarif_rule(rule: str, doc: rule_docs.RuleDoc | None, help_base: str) -> dict[str, object]:
    if doc is None:
        return {"id": rule, "shortDescription": {"text": rule}, "defaultConfiguration": {"level": "error"}}
    entry: dict[str, object] = {
        "id": rule,
        "shortDescription": {"text": doc.title},
        "fullDescription": {"text": doc.description},
        "help": {"text": f"{doc.description}\n\nDefined in {doc.source}."},
        "defaultConfiguration": {"level": "error"},
        "properties": {"security-severity": doc.security_severity, "tags": ["security", "kubernetes"]},
    }
    if help_base:
        entry["helpUri"] = f"{help_base}/{doc.source}"
    return entry


def write_sarif(
    path: Path,
    repo_root: Path,
    findings: list[Finding],
    docs: dict[str, rule_docs.RuleDoc] | None = None,
    help_base: str = "",
) -> None:
    """SARIF 2.1.0: one rule per rule checked (`docs`) or found, one result per finding, located at its
    lines in dist/ with the spec line that produced it as a related location."""
    docs = docs or {}
    rule_ids = sorted({*docs, *(f.rule for f in findings)})
    results = []
    for f in findings:
        result: dict[str, object] = {
            "ruleId": f.rule,
            "ruleIndex": rule_ids.index(f.rule),
            "level": "error",
            "message": {"text": f.describe()},
        }
        where = location(repo_root, f)
        if where is not None:
            uri, line, end = where
            result["locations"] = [_physical(uri, _region(line, end))]
        cause = origin_location(f)
        if cause is not None:
            related = _physical(cause[0], {"startLine": cause[1]})
            result["relatedLocations"] = [{"id": 1, **related, "message": {"text": f"set by {cause[2]}"}}]
        results.append(result)
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mlplatform-policy-check",
                        "rules": [sarif_rule(r, docs.get(r), help_base) for r in rule_ids],
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
    """`::error` workflow commands for each finding: on its lines in dist/ and, where it was traced, on the
    spec line that produced it (GitHub shows an annotation inline only on a line the pull request changes)."""
    lines = []
    for f in findings:
        where = location(repo_root, f)
        props = f"title={_escape(f.rule, prop=True)}"
        if where is not None:
            uri, line, end = where
            props = f"file={_escape(uri, prop=True)},line={line},endLine={end},{props}"
        lines.append(f"::error {props}::{_escape(f.describe())}")
        cause = origin_location(f)
        if cause is not None and (repo_root / cause[0]).is_file():
            file, line, field = cause
            title = _escape(f"{f.rule} (set by {field})", prop=True)
            props = f"file={_escape(file, prop=True)},line={line},title={title}"
            lines.append(f"::error {props}::{_escape(f.describe())}")
    return lines
