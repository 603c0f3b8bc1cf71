"""Prometheus metrics of one app instance (its own registry, so several apps can live in one process).

The per-request and per-batch series (request latency, cache lookups, rows, batches) are `LoopCounter` and
`LoopHistogram`: plain numbers that only the event loop thread updates, without prometheus_client's lock
and checks on every update (a few microseconds per request on a small CPU); a collector hands them to
prometheus_client as metric families at scrape time, so the exposition is the library's.
"""

from __future__ import annotations

import platform
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Generic, TypeVar

import onnxruntime
from prometheus_client import CollectorRegistry, Gauge, Info, ProcessCollector
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from inference_service import __version__

ChildT = TypeVar("ChildT")

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.sum += value
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose `le` holds the value


class _Labelled(Collector, Generic[ChildT]):
    """A metric with labels; `labels(*values)` makes (once) and returns the child for those values."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        child: Callable[[], ChildT],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self._child = child
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self.children: dict[tuple[str, ...], ChildT] = {}
        registry.register(self)

    def labels(self, *values: str) -> ChildT:
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: labels {self.labelnames}, got {values!r}")
            child = self.children[values] = self._child()
        return child


class LoopCounter(_Labelled[CounterChild]):
    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], *, registry: CollectorRegistry
    ) -> None:
        super().__init__(name, documentation, labelnames, child=CounterChild, registry=registry)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            family.add_metric(list(values), child.value)
        yield family


class LoopHistogram(_Labelled[HistogramChild]):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.bounds = tuple(float(b) for b in buckets)
        self.edges = [*(floatToGoString(b) for b in self.bounds), "+Inf"]  # type: ignore[no-untyped-call]
        super().__init__(
            name, documentation, labelnames, child=partial(HistogramChild, self.bounds), registry=registry
        )

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            cumulative, buckets = 0, []
            for edge, count in zip(self.edges, child.counts, strict=True):
                cumulative += count
                buckets.append((edge, cumulative))
            family.add_metric(list(values), buckets, sum_value=child.sum)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, open fds...
        Info("inference_build", "The service's version and the runtimes it runs on", registry=r).info(
            {
                "version": __version__,
                "python": platform.python_version(),
                "onnxruntime": onnxruntime.__version__,
            }
        )
        self.request_latency = LoopHistogram(
            "inference_request_duration_seconds",
            "Request latency by route template (gRPC: the method), model, status class (gRPC: the HTTP "
            "status its code stands for) and protocol (http, grpc)",
            ["route", "model", "status", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cache_lookups = LoopCounter(
            "inference_cache_lookups_total",
            "Rows looked up in the cache, by tier and result (hit or miss)",
            ["model", "tier", "result"],
            registry=r,
        )
        self.cache_errors = LoopCounter(
            "inference_cache_errors_total", "Failed or timed-out Redis calls", ["operation"], registry=r
        )
        self.singleflight_joins = LoopCounter(
            "inference_singleflight_joins_total",
            "Rows that waited for an identical row already being computed",
            ["model"],
            registry=r,
        )
        self.rows_computed = LoopCounter(
            "inference_rows_computed_total", "Rows run through the model", ["model"], registry=r
        )
        self.batch_size = LoopHistogram(
            "inference_batch_size", "Rows per onnxruntime call", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_latency = LoopHistogram(
            "inference_batch_duration_seconds",
            "Time of one batched onnxruntime call",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_load_seconds = Gauge(
            "inference_model_load_seconds", "Time to load and warm a model", ["model", "version"], registry=r
        )
        self.model_call_seconds = Gauge(
            "inference_model_call_seconds",
            "Median batch-1 inference time measured during warm-up",
            ["model", "version"],
            registry=r,
        )
        self.model_uses_redis = Gauge(
            "inference_model_uses_redis",
            "1 when the model's results are cached in Redis (inference costs more than a round trip)",
            ["model", "version"],
            registry=r,
        )
        self.model_inline = Gauge(
            "inference_model_inline",
            "1 when the model runs on the event loop thread (cheaper than a thread handoff)",
            ["model", "version"],
            registry=r,
        )
        self.redis_circuit_open = Gauge(
            "inference_redis_circuit_open", "1 while the Redis circuit breaker is open", registry=r
        )
        self.in_flight = Gauge("inference_requests_in_flight", "Requests being served", registry=r)
