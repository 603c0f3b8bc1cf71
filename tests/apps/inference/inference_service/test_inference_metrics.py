"""The loop-thread metrics (inference_service.metrics) expose what prometheus_client's own Counter and
Histogram expose for the same updates: both are scraped and parsed with prometheus_client's text parser."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from inference_service.metrics import LATENCY_BUCKETS, LoopCounter, LoopHistogram


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape but the `_created` timestamps, by name and labels."""
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def test_histogram_scrapes_as_prometheus_client_histogram() -> None:
    ours, reference = CollectorRegistry(), CollectorRegistry()
    labels = ["route", "model", "status"]
    mine = LoopHistogram("latency_seconds", "help", labels, buckets=LATENCY_BUCKETS, registry=ours)
    theirs = Histogram("latency_seconds", "help", labels, buckets=LATENCY_BUCKETS, registry=reference)
    rng = random.Random(7)
    # Values on the bucket edges, between them, above the last one, and zero.
    values = [*LATENCY_BUCKETS, 0.0, 3.0, 1e-9, *(rng.uniform(0, 3) for _ in range(500))]
    for i, value in enumerate(values):
        series = ("/v2/models/{model_name}/infer", "m" if i % 3 else "(unknown)", "2xx")
        mine.labels(*series).observe(value)
        theirs.labels(*series).observe(value)
    got, want = samples(ours), samples(reference)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key
    # And the edges mean what they say: a value on an edge counts in that bucket.
    edge = frozenset({("route", "/x"), ("model", "m"), ("status", "2xx"), ("le", "0.001")})
    mine.labels("/x", "m", "2xx").observe(0.001)
    assert samples(ours)[("latency_seconds_bucket", edge)] == 1


def test_counter_scrapes_as_prometheus_client_counter() -> None:
    ours, reference = CollectorRegistry(), CollectorRegistry()
    mine = LoopCounter("lookups_total", "help", ["tier", "result"], registry=ours)
    theirs = Counter("lookups_total", "help", ["tier", "result"], registry=reference)
    for tier, result, amount in [
        ("local", "hit", 1),
        ("local", "miss", 3),
        ("local", "hit", 2),
        ("redis", "hit", 5),
    ]:
        mine.labels(tier, result).inc(amount)
        theirs.labels(tier, result).inc(amount)
    mine.labels("local", "hit").inc()
    theirs.labels("local", "hit").inc()
    assert samples(ours) == samples(reference)


def test_labels_are_checked_and_children_kept() -> None:
    counter = LoopCounter("c_total", "help", ["model"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="labels"):
        counter.labels("a", "b")
    assert counter.labels("a") is counter.labels("a")
