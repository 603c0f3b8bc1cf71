"""Findings point at their cause (issue 25 point 5): the lines in dist/, the spec line that produced them,
rule metadata in SARIF, the same places in GitHub annotations, and drift from a fresh synth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from policy_check import __main__ as cli
from policy_check import declared, drift, origin, reports, rule_docs, runner
from tests.support.gate import run_gate

REPO = Path(__file__).resolve().parents[2]


def _run(
    dist_dir: Path, tools: Any, env: str, tmp_path: Path, overlays: Path | None = None
) -> runner.Outcome:
    specs = declared.for_environments(overlays or REPO / "overlays", [env])
    return run_gate(dist_dir, tools, tmp_path, specs=specs, only_env=env, overlays=overlays)


def _line_of(path: Path, needle: str, after: int = 0) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if number > after and needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


@pytest.fixture
def limit_below_request(base_dist: Any, tmp_path: Path) -> tuple[Path, Path]:
    """dev's dist/ with the inference container's memory limit below its request (the file as cdk8s wrote
    it, one value changed in place, so every other line keeps its number)."""
    source, _ = base_dist
    out = tmp_path / "dist"
    shutil.copytree(source / "dev", out / "dev")
    file = out / "dev" / "deployment-inference.yaml"
    lines = file.read_text().splitlines()
    limits = _line_of(file, "limits:")
    memory = _line_of(file, "memory:", after=limits)
    assert "768Mi" in lines[memory - 1]
    lines[memory - 1] = lines[memory - 1].replace("768Mi", "256Mi")
    file.write_text("\n".join(lines) + "\n")
    return out, file


def test_field_finding_points_at_the_field_and_the_overlay_line(
    limit_below_request: Any, tools: Any, tmp_path: Path
) -> None:
    out, file = limit_below_request
    outcome = _run(out, tools, "dev", tmp_path)
    hit = next(f for f in outcome.findings if f.rule == "limits-cover-requests")
    # the offending field's line in dist/, not the object's first line
    assert hit.field[-3:] == ("resources", "limits", "memory")
    assert file.read_text().splitlines()[hit.line - 1].strip() == "memory: 256Mi"
    # the overlay line that produced it: services.inference.resources.limits in overlays/dev.yaml
    overlay = REPO / "overlays" / "dev.yaml"
    path, line, field = reports.origin_location(hit) or ("", 0, "")
    assert (path, field) == ("overlays/dev.yaml", "services.inference.resources.limits.memory")
    assert "limits: {cpu:" in overlay.read_text().splitlines()[line - 1]
    assert f"(from overlays/dev.yaml:{line}: services.inference.resources.limits.memory)" in hit.describe()


def test_object_finding_spans_the_object_and_names_its_spec_entry(
    base_dist: Any, tools: Any, tmp_path: Path
) -> None:
    """A Kyverno finding (no path from the engine) covers the object's lines, and traces to the rule's
    field of the service in the overlay (require-image-digest: imageDigest)."""
    source, _ = base_dist
    out = tmp_path / "dist"
    shutil.copytree(source / "dev", out / "dev")
    file = out / "dev" / "deployment-inference.yaml"
    text = file.read_text()
    start = text.index("image: ")
    image = text[start : text.index("\n", start)]
    file.write_text(text.replace(image, "image: ghcr.io/example/mlplatform-inference:latest"))
    outcome = _run(out, tools, "dev", tmp_path)
    hit = next(f for f in outcome.findings if f.rule == "require-image-digest")
    assert (hit.line, hit.end_line) == (1, len(file.read_text().splitlines()))
    overlay = (REPO / "overlays" / "dev.yaml").read_text().splitlines()
    cause = reports.origin_location(hit)
    assert cause is not None and cause[2] == "services.inference.imageDigest"
    assert overlay[cause[1] - 1].strip().startswith("imageDigest:")


def test_network_policy_traces_to_its_connection(tmp_path: Path) -> None:
    origins = origin.Origins(REPO / "overlays", REPO)
    platform = yaml.safe_load((REPO / "overlays" / "platform.yaml").read_text())
    index = next(
        i for i, c in enumerate(platform["connections"]) if (c["from"], c["to"]) == ("inference", "redis")
    )
    cause = origins.of("dev", "NetworkPolicy", "allow-redis-from-inference", {}, "network-isolation", ())
    where, field = cause.split(": ")
    file, line = where.split(":")
    assert (file, field) == ("overlays/platform.yaml", f"connections[{index}]")
    assert "inference" in (REPO / file).read_text().splitlines()[int(line) - 1]


def test_sarif_and_annotations_carry_both_locations_and_rule_metadata(
    limit_below_request: Any, tools: Any, tmp_path: Path
) -> None:
    out, file = limit_below_request
    outcome = _run(out, tools, "dev", tmp_path)
    docs = rule_docs.load(REPO, tools.kyverno_policies, tools.conftest_policies)
    sarif_path = tmp_path / "out.sarif"
    github = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r", "GITHUB_SHA": "abc"}
    base = rule_docs.help_base(REPO, github)
    reports.write_sarif(sarif_path, out.parent, outcome.findings, docs, base)
    run = json.loads(sarif_path.read_text())["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    result = next(r for r in run["results"] if r["ruleId"] == "limits-cover-requests")
    rule = rules[result["ruleIndex"]]
    assert rule["id"] == "limits-cover-requests"
    assert rule["shortDescription"]["text"] == "No container asks for more than its limit"
    assert "apiserver rejects such a pod" in rule["fullDescription"]["text"]
    assert rule["properties"]["security-severity"] == "5.5"  # medium
    assert rule["helpUri"] == (
        "https://github.com/o/r/blob/abc/policies/conftest/environment/limits_cover_requests.rego"
    )
    digest = next(r for r in rules if r["id"] == "require-image-digest")
    assert digest["shortDescription"]["text"] == "Pin images by digest"
    assert digest["properties"]["security-severity"] == "8.0"  # the policy's annotation says high
    physical = result["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == "dist/dev/deployment-inference.yaml"
    line = physical["region"]["startLine"]
    assert file.read_text().splitlines()[line - 1].strip() == "memory: 256Mi"
    related = result["relatedLocations"][0]["physicalLocation"]
    assert related["artifactLocation"]["uri"] == "overlays/dev.yaml"
    # the annotations: the same two places
    hit = next(f for f in outcome.findings if f.rule == "limits-cover-requests")
    annotations = reports.github_annotations(REPO, [hit])
    assert annotations[0].startswith(f"::error file=dist/dev/deployment-inference.yaml,line={line},")
    overlay_line = related["region"]["startLine"]
    assert annotations[1].startswith(f"::error file=overlays/dev.yaml,line={overlay_line},")


def test_every_rule_checked_has_title_description_and_severity(tools: Any) -> None:
    docs = rule_docs.load(REPO, tools.kyverno_policies, tools.conftest_policies)
    checked = set(runner.rule_ids(tools)) | {runner.CLUSTER_POLICIES_RULE, runner.WAIVER_RULE, drift.RULE}
    assert checked - set(docs) == set()
    for doc in docs.values():
        assert doc.title and len(doc.description) > 40 and (REPO / doc.source).is_file()
        assert float(doc.security_severity) > 0


def test_rego_rule_without_metadata_is_refused(tmp_path: Path) -> None:
    rego = tmp_path / "environment" / "some_rule.rego"
    rego.parent.mkdir()
    rego.write_text(
        "package environment\n\n# METADATA\n# title: T\n# description: D\n"
        "# custom:\n#   severity: urgent\nx := 1\n"
    )
    with pytest.raises(
        rule_docs.RuleDocError, match="severity 'urgent'; allowed: critical, high, medium, low"
    ):
        rule_docs.load(tmp_path, [], tmp_path)
    rego.write_text("package environment\n\nx := 1\n")
    with pytest.raises(rule_docs.RuleDocError, match="some-rule has no title, description, severity"):
        rule_docs.load(tmp_path, [], tmp_path)


def test_drift_names_the_file_line_and_object(base_dist: Any, tmp_path: Path) -> None:
    source, _ = base_dist
    ours = tmp_path / "dist"
    shutil.copytree(source, ours)
    config = ours / "dev" / "configmap-inference-config.yaml"
    ttl = _line_of(config, "INFERENCE_CACHE_TTL_SECONDS")
    config.write_text(config.read_text().replace('TTL_SECONDS: "60"', 'TTL_SECONDS: "3600"'))
    (ours / "stage" / "configmap-extra.yaml").write_text("a: 1\n")
    (ours / "prod" / "service-redis.yaml").unlink()
    found = drift.compare(ours, source)
    assert [(f.environment, f.file, f.line) for f in found] == [
        ("dev", "configmap-inference-config.yaml", ttl),
        ("prod", "service-redis.yaml", 0),
        ("stage", "configmap-extra.yaml", 0),
    ]
    assert (found[0].kind, found[0].name) == ("ConfigMap", "inference-config")
    assert '"3600"' in found[0].message and '"60"' in found[0].message
    assert "missing" in found[1].message and "does not write" in found[2].message
    assert drift.compare(source, source) == []


def test_check_reports_a_hand_edit_as_drift_against_a_real_synth(base_dist: Any, tmp_path: Path) -> None:
    """The real synth (main.py --out, into a temporary folder): a hand edit that breaks no policy fails."""
    source, _ = base_dist
    ours = tmp_path / "dist"
    shutil.copytree(source, ours)
    config = ours / "dev" / "configmap-inference-config.yaml"
    config.write_text(config.read_text().replace('TTL_SECONDS: "60"', 'TTL_SECONDS: "61"'))
    synth = drift.start(REPO)
    found = drift.check(synth, ours)
    assert [(f.rule, f.environment, f.file) for f in found] == [
        ("dist-drift", "dev", "configmap-inference-config.yaml")
    ]
    assert not Path(synth.tmp.name).exists()  # the temporary synth is removed
    assert drift.check(drift.start(REPO, "prod"), source, "prod") == []


def test_drift_is_on_by_default_for_the_repository_dist_only(tmp_path: Path) -> None:
    args = cli.parse_args(["--reports", str(tmp_path)])
    assert args.drift is None and args.dist.resolve() == (REPO / "dist").resolve()
