"""policies/exceptions.yaml: the one reviewed list of waivers, and its translation for each engine.

Each waiver names one object (environment, kind, namespace, name), one rule (a Kyverno policy name or a
conftest rule id; every rule has exactly one engine), why, who owns it and until when. A waiver of a Kyverno
rule is translated once, into the PolicyException that synth writes to dist/cluster-policies/ (see
mlplatform.cluster_policies), so admission honours it too; the check matches it to Kyverno's findings by
object. conftest gets the list as data. An expired waiver, one naming an unknown rule, or one that matched
nothing fails the check.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REQUIRED = ("environment", "kind", "name", "rule", "reason", "owner", "expires")
ALLOWED = frozenset((*REQUIRED, "namespace"))


class WaiverError(Exception):
    """The waiver file is malformed."""


@dataclass(frozen=True)
class Waiver:
    id: str
    environment: str
    kind: str
    namespace: str
    name: str
    rule: str
    reason: str
    owner: str
    expires: dt.date

    def expired(self, today: dt.date) -> bool:
        return self.expires < today

    def describe(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.id} ({self.environment} {self.kind} {where}, rule {self.rule}, owner {self.owner})"


def load(path: Path) -> list[Waiver]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise WaiverError(f"{path}: not found (it must exist; an empty list is `waivers: []`)") from err
    except yaml.YAMLError as err:
        raise WaiverError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("waivers"), list):
        raise WaiverError(f"{path}: expected a mapping with a `waivers` list, got {type(raw).__name__}")
    return [_parse(path, i, entry) for i, entry in enumerate(raw["waivers"])]


def _parse(path: Path, index: int, entry: Any) -> Waiver:
    where = f"{path}: waivers[{index}]"
    if not isinstance(entry, dict):
        raise WaiverError(f"{where}: expected a mapping with fields {', '.join(REQUIRED)}")
    unknown = sorted(set(entry) - ALLOWED)
    if unknown:
        raise WaiverError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(ALLOWED)}")
    missing = [k for k in REQUIRED if entry.get(k) in (None, "")]
    if missing:
        raise WaiverError(f"{where}: missing {', '.join(missing)} (every waiver needs {', '.join(REQUIRED)})")
    expires = entry["expires"]
    if not isinstance(expires, dt.date):
        try:
            expires = dt.date.fromisoformat(str(expires))
        except ValueError as err:
            raise WaiverError(f"{where}.expires: {expires!r} is not a date (YYYY-MM-DD)") from err
    return Waiver(
        id=f"waiver-{index}",
        environment=str(entry["environment"]),
        kind=str(entry["kind"]),
        namespace=str(entry.get("namespace") or ""),
        name=str(entry["name"]),
        rule=str(entry["rule"]),
        reason=str(entry["reason"]),
        owner=str(entry["owner"]),
        expires=expires,
    )


def conftest_data(waivers: list[Waiver]) -> list[dict[str, str]]:
    return [
        {"id": w.id, "rule": w.rule, "kind": w.kind, "namespace": w.namespace, "name": w.name}
        for w in waivers
    ]
