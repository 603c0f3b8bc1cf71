"""What each rule is, for the reports: title, description, severity and the file that defines it.

Read from the policies themselves: a Kyverno policy's `policies.kyverno.io/{title,description,severity}`
annotations; a conftest rule's OPA METADATA annotation (`# METADATA` comment block, YAML: `title`,
`description`, `custom.id`, `custom.severity`) in its `.rego` file, the format `opa inspect -a` and Regal
read; the rules checked in Python below. SARIF's `security-severity` (what GitHub code scanning sorts by:
critical >= 9.0, high 7.0-8.9, medium 4.0-6.9, low < 4.0) is mapped from the severity. The help URI points
at the policy's file in the repository: on GitHub Actions the commit under test (GITHUB_SERVER_URL,
GITHUB_REPOSITORY, GITHUB_SHA), elsewhere the repository and revision Argo CD syncs (`argocd.repoUrl`,
`targetRevision` of overlays/platform.yaml).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0"}
KYVERNO_ANNOTATION = "policies.kyverno.io/"
METADATA_MARK = "# METADATA"


@dataclass(frozen=True)
class RuleDoc:
    id: str
    title: str
    description: str
    severity: str  # critical, high, medium or low
    source: str  # the file that defines the rule, relative to the repository root

    @property
    def security_severity(self) -> str:
        return SECURITY_SEVERITY[self.severity]


#: Rules checked in Python (policy_check itself), documented where they are written.
BUILTIN = {
    "crd-schema": (
        "Custom resources match their operator's CRD schema",
        "Every custom resource in dist/ is valid against the schema of the pinned CRD its operator installs: "
        "an unknown or mistyped field is refused by the apiserver at sync, or silently dropped.",
        "high",
        "policies/policy_check/crd_schema.py",
    ),
    "cluster-policies-scope": (
        "Every workload is in scope of the cluster policies",
        "A workload whose namespace the Kyverno policies do not select would be checked neither by the gate "
        "nor at admission, so a missing mlplatform.io/managed label cannot turn the gate off.",
        "critical",
        "policies/policy_check/kyverno.py",
    ),
    "admission-allowlist": (
        "Admission allow-lists match the spec",
        "The closed-world lists the Kyverno policies enforce at admission (image repositories, volume "
        "types, Service types) are the ones the spec of every environment implies.",
        "high",
        "policies/policy_check/allowlist.py",
    ),
    "cluster-policies-in-sync": (
        "dist/cluster-policies/ is what the gate checked",
        "The policies synced to the clusters are byte copies of policies/kyverno/, with one PolicyException "
        "per live waiver, so admission enforces exactly what the pull request checked.",
        "high",
        "constructs/mlplatform/cluster_policies.py",
    ),
    "waivers": (
        "Waivers are reviewed, used and current",
        "Every waiver in policies/exceptions.yaml names a known rule, matches a violation and has not "
        "expired: a stale waiver would silently cover the next violation.",
        "medium",
        "constructs/mlplatform/waivers.py",
    ),
    "dist-drift": (
        "dist/ is what the spec synthesizes",
        "The committed dist/ equals a fresh synth of overlays/: Argo CD syncs dist/, so a hand edit or a "
        "forgotten re-synth would deploy something no spec says.",
        "high",
        "policies/policy_check/drift.py",
    ),
}


class RuleDocError(ValueError):
    """A policy's metadata is missing or malformed."""


def load(repo_root: Path, kyverno_policies: list[Path], conftest_dir: Path) -> dict[str, RuleDoc]:
    docs = {rid: RuleDoc(rid, *fields) for rid, fields in BUILTIN.items()}
    for path in kyverno_policies:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        meta = doc.get("metadata") or {}
        notes = meta.get("annotations") or {}
        name = str(meta.get("name", path.stem))
        docs[name] = _doc(name, notes, KYVERNO_ANNOTATION, _shown(path, repo_root))
    for path in sorted(conftest_dir.rglob("*.rego")):
        if path.name.endswith("_test.rego") or path.parent.name == "lib" or path.stem == "deny":
            continue
        meta = rego_metadata(path)
        custom = meta.get("custom") or {}
        rid = str(custom.get("id") or path.stem.replace("_", "-"))
        fields = {"title": meta.get("title"), "description": meta.get("description"), **custom}
        docs[rid] = _doc(rid, fields, "", _shown(path, repo_root))
    return docs


def rego_metadata(path: Path) -> dict[str, Any]:
    """The first OPA METADATA block of a .rego file, as its YAML says ({} when there is none)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if METADATA_MARK not in lines:
        return {}
    block = []
    for line in lines[lines.index(METADATA_MARK) + 1 :]:
        if not line.startswith("#"):
            break
        block.append(line[2:] if line.startswith("# ") else line[1:])
    try:
        meta = yaml.safe_load("\n".join(block))
    except yaml.YAMLError as err:
        raise RuleDocError(f"{path}: METADATA is not valid YAML: {err}") from err
    if not isinstance(meta, dict):
        raise RuleDocError(f"{path}: METADATA is not a mapping")
    return meta


def _doc(rid: str, fields: Mapping[str, Any], prefix: str, source: str) -> RuleDoc:
    values = {k: str(fields.get(prefix + k) or "").strip() for k in ("title", "description", "severity")}
    missing = [k for k, v in values.items() if not v]
    if missing:
        raise RuleDocError(f"{source}: rule {rid} has no {', '.join(prefix + k for k in missing)}")
    if values["severity"] not in SECURITY_SEVERITY:
        allowed = ", ".join(SECURITY_SEVERITY)
        raise RuleDocError(f"{source}: rule {rid}: severity {values['severity']!r}; allowed: {allowed}")
    return RuleDoc(rid, values["title"], values["description"], values["severity"], source)


def _shown(path: Path, repo_root: Path) -> str:
    try:
        return str(path.resolve().relative_to(repo_root.resolve()))
    except ValueError:
        return str(path)


def help_base(repo_root: Path, env: Mapping[str, str] | None = None) -> str:
    """`<repository web URL>/blob/<revision>` for links to a rule's file ("" when none is known)."""
    env = os.environ if env is None else env
    if env.get("GITHUB_REPOSITORY") and env.get("GITHUB_SHA"):
        server = env.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server}/{env['GITHUB_REPOSITORY']}/blob/{env['GITHUB_SHA']}"
    try:
        platform = yaml.safe_load((repo_root / "overlays" / "platform.yaml").read_text(encoding="utf-8"))
        argocd = platform.get("argocd") or {}
        url, rev = str(argocd.get("repoUrl") or ""), str(argocd.get("targetRevision") or "HEAD")
    except (OSError, yaml.YAMLError, AttributeError):
        return ""
    if not url.startswith("https://"):
        return ""
    return f"{url.removesuffix('.git').rstrip('/')}/blob/{rev}"
