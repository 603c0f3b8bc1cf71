"""Machine-readable results: JUnit XML (one test case per environment and rule) and SARIF 2.1.0."""

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


def write_sarif(path: Path, dist_uri: str, findings: list[Finding]) -> None:
    rule_ids = sorted({f.rule for f in findings})
    results = []
    for f in findings:
        result: dict[str, object] = {
            "ruleId": f.rule,
            "level": "error",
            "message": {"text": f.describe()},
        }
        if f.file:
            uri = f"{dist_uri}/{f.environment}/{f.file}"
            result["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": uri}}}]
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
