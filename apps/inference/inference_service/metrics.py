"""Prometheus metrics of one app instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_latency = Histogram(
            "inference_request_duration_seconds",
            "HTTP request latency by route template, model and status class",
            ["route", "model", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cache_lookups = Counter(
            "inference_cache_lookups_total",
            "Rows looked up in the cache, by tier and result (hit or miss)",
            ["model", "tier", "result"],
            registry=r,
        )
        self.cache_errors = Counter(
            "inference_cache_errors_total", "Failed or timed-out Redis calls", ["operation"], registry=r
        )
        self.singleflight_joins = Counter(
            "inference_singleflight_joins_total",
            "Rows that waited for an identical row already being computed",
            ["model"],
            registry=r,
        )
        self.rows_computed = Counter(
            "inference_rows_computed_total", "Rows run through the model", ["model"], registry=r
        )
        self.batch_size = Histogram(
            "inference_batch_size", "Rows per onnxruntime call", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_latency = Histogram(
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
