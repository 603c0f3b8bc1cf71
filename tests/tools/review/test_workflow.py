"""The pull-request workflow posts what `make review` wrote, with the least token it can."""

from __future__ import annotations

from pathlib import Path

import yaml

from review.report import MARKER

WORKFLOW = Path(__file__).resolve().parents[3] / ".github" / "workflows" / "pull-request.yml"


def test_only_the_review_job_may_write_to_pull_requests() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert flow["permissions"] == {"contents": "read"}
    writers = [
        name for name, job in flow["jobs"].items() if "pull-requests" in (job.get("permissions") or {})
    ]
    assert writers == ["review"]
    job = flow["jobs"]["review"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert job["if"] == "github.event_name == 'pull_request'"
    steps = {s.get("name", ""): s for s in job["steps"]}
    assert steps["Review (reports/review.md)"]["run"] == 'make review BASE="origin/$BASE_REF"'
    assert "GITHUB_STEP_SUMMARY" in steps["Job summary"]["run"]
    post = steps["Create or update the review comment"]
    assert post["if"] == "github.event.pull_request.head.repo.full_name == github.repository"  # never forks
    script = post["with"]["script"]
    assert f"const marker = '{MARKER}'" in script  # the marker the review writes on its first line
    assert "updateComment" in script and "createComment" in script
