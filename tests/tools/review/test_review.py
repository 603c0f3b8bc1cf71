"""`make review` on real git repositories: what each kind of change shows the reviewer."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from mlplatform.schema.overlay import DEFAULT_TARGET_IN_FLIGHT, DEFAULT_TARGET_REQUEST_RATE
from testcluster.argocd_sync import add_service
from tests.support import clusters

Review = Callable[..., str]
Helpers = tuple[Callable[..., str], Callable[[Path], None], Callable[[Path, str], str]]


def section(text: str, folder: str) -> str:
    """The part of the review about dist/<folder>/."""
    start = text.index(f"### `dist/{folder}/`")
    end = text.find("\n### ", start + 1)
    return text[start : end if end > 0 else None]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_one_line_spec_change(repo: Path, review: Review, helpers: Helpers) -> None:
    _git, synth, _commit = helpers
    edit(repo / "overlays" / "dev.yaml", "    replicas: 1\n", "    replicas: 3\n")
    synth(repo)
    text = review(repo, "--no-gate")  # BASE: the merge base with origin/main
    assert text.startswith("<!-- mlplatform-review -->\n")
    dev = section(text, "dev")
    assert "| changed | Deployment `inference` | replicas: 1 → 3 |" in dev
    # minimum: 3 + redis; maximum: 3 + one surge pod (25% of 3, rounded up) + redis, 2 more than 1 + 1 + 1
    assert "| pods | 4 | 5 | 20 | 25% | +2 |" in dev
    assert "**Network flows:** none opened or closed" in dev
    assert "syncs automatically" in dev
    assert "class inference changed" in dev  # the diagram's node says 3 replica(s) now
    raw = dev.split("<summary>Raw diff")[1]
    assert "--- a/dist/dev/deployment-inference.yaml" in raw
    assert "-  replicas: 1\n+  replicas: 3" in dev
    for env in ("stage", "prod", "argocd", "cluster-policies"):
        assert f"### `dist/{env}/`: no change." in text
    assert "- dev: 0 added, 0 removed, 1 changed; flows 0 opened, 0 closed" in text


def test_an_autoscaling_signal_change_reads_as_what_it_scales_on(
    repo: Path, review: Review, helpers: Helpers
) -> None:
    _git, synth, _commit = helpers
    edit(repo / "overlays" / "prod.yaml", "      signal: inFlight\n", "      signal: requestRate\n")
    synth(repo)
    prod = section(review(repo, "--no-gate"), "prod")
    (line,) = [x for x in prod.splitlines() if x.startswith("| changed | ScaledObject `inference` |")]
    before = "prometheus `sum(rate(inference_request_duration_seconds_sum{"
    after = "prometheus `sum(rate(inference_request_duration_seconds_count{"
    assert f"scales on: {before}" in line and f"→ {after}" in line, line
    # the targets are the spec's defaults (neither is set in prod.yaml)
    assert f"at {DEFAULT_TARGET_IN_FLIGHT:g} per pod → " in line, line
    assert line.endswith(f"at {DEFAULT_TARGET_REQUEST_RATE} per pod |"), (
        line
    )  # nothing else: no "also changed"


def test_service_added_then_removed(repo: Path, review: Review, helpers: Helpers) -> None:
    git, synth, commit = helpers
    base = git(repo, "rev-parse", "HEAD")  # == origin/main
    add_service(repo, "ranker")
    synth(repo)
    added = review(repo, "--no-gate", "--base", base)
    for env in ("dev", "stage", "prod"):
        part = section(added, env)
        row = next(line for line in part.splitlines() if line.startswith("| added | Deployment `ranker` |"))
        assert "container inference image: ghcr.io/example/mlplatform-inference@sha256:" in row
        ingress = "gateway-system" if env == "prod" else "ingress-nginx"
        assert f"🔓 opened: ingress-controller ({ingress}) → ranker, TCP 8080" in part
        assert "🔓 opened: ranker → redis, TCP 6379" in part
        assert "class ranker added" in part  # the diagram marks the new node
        assert "closed" not in part.split("**Network flows**")[1].split("**Gate")[0]
    assert "| added | Application" not in added  # one Application per environment, not per service
    with_ranker = commit(repo, "add ranker")
    # back to the first commit's tree: the same change the other way round
    git(repo, "reset", "-q", "--hard", base)
    removed = review(repo, "--no-gate", "--base", with_ranker)
    stage = section(removed, "stage")
    assert "| removed | Deployment `ranker` | removed |" in stage
    assert "| removed | Deployment `ranker-worker` | removed |" in stage  # stage runs jobs
    assert "🔒 closed: ranker → redis, TCP 6379" in stage
    assert "class ranker removed" in stage
    assert re.search(r"\| pods \| \d+ \| \d+ \| 30 \| \d+% \| -\d+ \|", stage), stage


def test_network_policy_widened(repo: Path, review: Review) -> None:
    policy = repo / "dist" / "dev" / "networkpolicy-allow-redis-from-inference.yaml"
    obj = yaml.safe_load(policy.read_text(encoding="utf-8"))
    obj["spec"]["ingress"][0]["from"] = [{"namespaceSelector": {}}]  # every pod of every namespace
    policy.write_text(yaml.safe_dump(obj), encoding="utf-8")
    text = review(repo, "--no-gate")
    dev = section(text, "dev")
    assert "rule added: ingress from ns {all} on TCP 6379" in dev
    assert "rule removed: ingress from pods {app.kubernetes.io/name=inference} on TCP 6379" in dev
    assert "🔓 opened: pods {all} in namespaces {all} → redis, TCP 6379" in dev
    assert "🔓 opened: ingress-controller (ingress-nginx) → redis, TCP 6379" in dev
    # inference -> redis was allowed before and still is: neither opened nor closed
    assert "inference → redis" not in dev
    assert "🔒 closed" not in dev


def test_quota_exceeded_fails_the_gate(repo: Path, review: Review, helpers: Helpers) -> None:
    _git, synth, _commit = helpers
    edit(repo / "overlays" / "dev.yaml", "  pods: 20\n", "  pods: 2\n")
    synth(repo)
    text = review(repo)
    dev = section(text, "dev")
    assert "| changed | ResourceQuota `compute` | quota pods: 20 → 2 |" in dev
    assert "| pods | 2 | 3 | 2 | ❌ over by 1 | none |" in dev
    assert "**Gate:** ❌" in dev
    assert "| `quota-admits-max-scale` | ResourceQuota mlplatform-dev/compute" in dev
    assert "- gate: FAILS with" in text


def test_expiring_waiver_is_flagged(repo: Path, review: Review, helpers: Helpers) -> None:
    _git, synth, _commit = helpers
    edit(repo / "overlays" / "dev.yaml", "  pods: 20\n", "  pods: 2\n")
    expires = dt.date.today() + dt.timedelta(days=5)
    (repo / "policies" / "exceptions.yaml").write_text(
        yaml.safe_dump(
            {
                "waivers": [
                    {
                        "environment": "dev",
                        "kind": "ResourceQuota",
                        "namespace": "mlplatform-dev",
                        "name": "compute",
                        "rule": "quota-admits-max-scale",
                        "reason": "dev runs one replica while the cluster is resized",
                        "owner": "platform-team",
                        "expires": expires.isoformat(),
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    synth(repo)
    text = review(repo)
    dev = section(text, "dev")
    assert "**Gate:** ✅ passes." in dev
    row = (
        f"| `quota-admits-max-scale` | ResourceQuota mlplatform-dev/compute | platform-team | "
        f"{expires.isoformat()} ⚠️ in 5 day(s) | dev runs one replica while the cluster is resized |"
    )
    assert row in dev
    assert "- gate: passes; 1 waiver(s) in use, 1 expiring within 14 days" in text


def test_a_flow_between_our_pods_needs_both_ends(repo: Path, review: Review) -> None:
    """Without inference's egress policy inference -> redis is closed, though redis's ingress allows it."""
    (repo / "dist" / "prod" / "networkpolicy-allow-inference-to-redis.yaml").unlink()
    prod = section(review(repo, "--no-gate"), "prod")
    assert "| removed | NetworkPolicy `allow-inference-to-redis` | removed |" in prod
    assert "🔒 closed: inference → redis, TCP 6379" in prod
    assert "🔒 closed: inference-canary → redis, TCP 6379" in prod  # the policy selects both tracks
    assert "🔓 opened" not in prod


def test_sync_mode_and_config_keys_without_values(repo: Path, review: Review, helpers: Helpers) -> None:
    _git, synth, _commit = helpers
    edit(repo / "overlays" / "dev.yaml", "sync:\n  mode: automated\n", "sync:\n  mode: manual\n")
    edit(repo / "overlays" / "dev.yaml", "cacheTtlSeconds: 60\n", "cacheTtlSeconds: 7777\n")
    synth(repo)
    text = review(repo, "--no-gate")
    dev, argocd = section(text, "dev"), section(text, "argocd")
    assert (
        "**Argo CD:** Application `mlplatform-dev` waits for a manual sync (manual) "
        "(was: automatic, prune, selfHeal)."
    ) in dev
    assert "| changed | ConfigMap `inference-config` | key INFERENCE_CACHE_TTL_SECONDS: changed |" in dev
    assert "7777" not in text.split("<summary>Raw diff")[0]  # a value only ever in the raw diff
    assert "| changed | Application `mlplatform-dev` | sync: automatic, prune, selfHeal → manual |" in argocd
    assert "| `mlplatform-dev` | `dist/dev` | manual |" in argocd


def test_an_environment_on_two_clusters_is_reviewed_per_cluster(
    repo: Path, review: Review, helpers: Helpers
) -> None:
    """prod on two clusters (tests/support/clusters.py) as the base; the change raises eu-west's maximum
    past prod's quota: eu-west's section shows the change and the gate's failure, us-east's shows neither."""
    _git, synth, commit = helpers
    prod = repo / "overlays" / "prod.yaml"
    data = yaml.safe_load(prod.read_text(encoding="utf-8"))
    clusters.two_clusters(data)
    prod.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    synth(repo)
    base = commit(repo, "prod on two clusters")
    pods = int(data["quota"]["pods"])
    data["clusters"][clusters.EU]["services"]["inference"]["maxReplicas"] = pods + 1
    prod.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    synth(repo)
    text = review(repo, "--base", base)
    eu, us = section(text, f"prod/{clusters.EU}"), section(text, f"prod/{clusters.US}")
    low, high = clusters.EU_BOUNDS
    change = f"autoscaling: {low}-{high} replicas → {low}-{pods + 1} replicas"
    assert f"| changed | ScaledObject `inference` | {change} |" in eu, eu
    assert "**Gate:** ❌" in eu and "`quota-admits-max-scale`" in eu, eu
    assert us.startswith(f"### `dist/prod/{clusters.US}/`: no change."), us
    assert f"- prod/{clusters.EU}: 0 added, 0 removed, 1 changed" in text
