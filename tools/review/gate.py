"""The gate's verdict on a dist/: `make check`'s own engine (policy_check.runner), with its cache, so a
review after `make check` reuses its findings. The policies and tools are this checkout's; the spec, the
waivers (policies/exceptions.yaml) and dist/ are the reviewed repository's."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from mlplatform import waivers
from policy_check import cache, declared, dist, runner
from policy_check.__main__ import INPUT_ERRORS, REPO_ROOT, tools_at
from policy_check.findings import Finding

EXPIRY_WARNING_DAYS = 14


@dataclass
class Verdict:
    ran: bool
    error: str = ""
    findings: list[Finding] = field(default_factory=list)
    waived: list[Finding] = field(default_factory=list)
    listed: list[waivers.Waiver] = field(default_factory=list)  # every waiver of policies/exceptions.yaml
    today: dt.date = field(default_factory=dt.date.today)

    def expiring(self, w: waivers.Waiver) -> bool:
        days: int = (w.expires - self.today).days
        return days <= EXPIRY_WARNING_DAYS

    def failing(self, env: str) -> list[Finding]:
        return [f for f in self.findings if f.environment == env]


def run(
    repo: Path, *, dist_dir: Path | None = None, today: dt.date | None = None, use_cache: bool = True
) -> Verdict:
    today = today or dt.date.today()
    exceptions = repo / "policies" / "exceptions.yaml"
    dist_dir = dist_dir or repo / "dist"
    try:
        tools = tools_at(REPO_ROOT / ".tools" / "bin")
        envs = dist.environments(dist_dir)
        outcome = runner.run(
            repo_root=REPO_ROOT,
            dist_dir=dist_dir,
            tools=tools,
            waiver_file=exceptions,
            only_env=None,
            specs=declared.for_environments(repo / "overlays", envs),
            today=today,
            cache=cache.Cache(cache.default_dir(), REPO_ROOT, [tools.kyverno, tools.conftest])
            if use_cache
            else None,
            overlays=repo / "overlays",
        )
        listed = waivers.load(exceptions)
    except INPUT_ERRORS as err:
        return Verdict(ran=False, error=str(err).splitlines()[0], today=today)
    return Verdict(True, "", outcome.findings, outcome.waived, listed, today)
