"""All configuration of the inference service: one pydantic-settings class, environment prefix `INFERENCE_`.

The names and defaults follow the runtime contract in the repository README (the manifests set them).
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_MODEL_REF = re.compile(r"^(?P<name>[a-z0-9]([a-z0-9-]*[a-z0-9])?):(?P<version>[0-9]+)$")


class Settings(BaseSettings):
    """Every setting, read from `INFERENCE_<NAME>` environment variables."""

    model_config = SettingsConfigDict(env_prefix="INFERENCE_", extra="ignore", frozen=True)

    # Models
    model_repository: Path = Field(default=Path("/models"), description="root laid out <model>/<version>/")
    models: str = Field(
        default="", description="live versions, `name:version,name:version`; empty: latest of every model"
    )

    # HTTP
    host: str = Field(default="0.0.0.0", description="bind address (the container listens on all)")  # noqa: S104
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(
        default=1,
        ge=1,
        description="uvicorn worker processes; each has its own caches and metrics, so a scrape sees one "
        "worker: in a cluster keep 1 and scale out with replicas",
    )
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0, description="larger request bodies get 413")
    max_response_bytes: int = Field(
        default=32 * 1024 * 1024,
        gt=0,
        description="a response bound to be larger is refused with 413 before inference (and one that turns "
        "out larger after it)",
    )
    access_log: bool = Field(default=True, description="one JSON line per request on stdout")
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a connection without complete request headers this long is closed"
    )
    idle_timeout_seconds: float = Field(
        default=5.0, gt=0, description="an idle kept-alive connection is closed (uvicorn timeout_keep_alive)"
    )
    max_header_bytes: int = Field(
        default=32 * 1024, ge=1024, description="larger request headers: 431, closed"
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="open connections past which requests get 503 with Retry-After (health probes never)",
    )
    max_in_flight: int = Field(
        default=256, ge=1, description="requests in progress past which new ones get 503 with Retry-After"
    )

    # gRPC (inference_service.grpc): the Open Inference Protocol's GRPCInferenceService and grpc.health.v1
    grpc_port: int = Field(
        default=8081,
        ge=0,
        le=65535,
        description="the gRPC server's port, on the same event loop as HTTP; 0: no gRPC server",
    )
    grpc_max_receive_bytes: int = Field(
        default=8 * 1024 * 1024,
        gt=0,
        description="larger request messages are refused with RESOURCE_EXHAUSTED before they are parsed",
    )
    grpc_max_concurrent_streams: int = Field(
        default=256, ge=1, description="RPCs one HTTP/2 connection may have open at once"
    )

    # Security
    auth_enabled: bool = Field(
        default=True, description="require an API key on everything but health/metrics"
    )
    api_keys_file: Path | None = Field(default=None, description="one API key per line (mounted secret)")
    api_keys: SecretStr = Field(default=SecretStr(""), description="comma-separated API keys")
    metrics_token_file: Path | None = Field(
        default=None, description="the scraper's bearer token for /metrics (mounted secret)"
    )
    metrics_token: SecretStr = Field(
        default=SecretStr(""),
        description="or the token itself; with auth on and no token, /metrics answers 401 to everyone "
        "(its labels name the served models)",
    )
    public_docs: bool = Field(
        default=False,
        description="/docs and /openapi.json without a key (`make serve` sets it; the manifests never do: "
        "the document names every model)",
    )

    # Identity (inference_service.identity): OIDC tokens, the access policy, the audit trail
    oidc_issuer: str = Field(default="", description="accepted `iss` of bearer JWTs; empty: API keys only")
    oidc_audience: str = Field(default="", description="required `aud` (needed with oidc_issuer)")
    oidc_jwks_file: Path | None = Field(default=None, description="the issuer's JWKS (a mounted file)")
    oidc_jwks_url: str = Field(default="", description="or its https URL (one of the two)")
    oidc_algorithms: str = Field(default="RS256,ES256", description="allowed `alg`s; asymmetric only")
    oidc_leeway_seconds: float = Field(default=30.0, ge=0, le=300, description="clock skew on exp/nbf/iat")
    oidc_jwks_refresh_min_seconds: float = Field(
        default=30.0, ge=0, description="at most one JWKS refresh per this interval (unknown kid)"
    )
    oidc_jwks_max_age_seconds: float = Field(default=300.0, gt=0, description="background JWKS refresh age")
    token_cache_entries: int = Field(default=10_000, ge=0, description="verified tokens kept (until exp)")
    access_policy_file: Path | None = Field(
        default=None, description="JSON access policy (identity/policy.py); none: every key, no token"
    )
    access_policy: str = Field(default="", description="the same policy inline (JSON)")
    audit_log: str = Field(default="stderr", description="audit lines: stderr, stdout or a file path")

    # Cache
    redis_url: str = Field(default="", description="e.g. redis://redis:6379/0; empty: no Redis tier")
    redis_password_file: Path | None = Field(default=None, description="file holding the Redis password")
    redis_timeout_ms: float = Field(default=25.0, gt=0, description="hard ceiling on one Redis call")
    redis_breaker_failures: int = Field(
        default=3, ge=1, description="consecutive errors that open the breaker"
    )
    redis_breaker_cooldown_seconds: float = Field(default=2.0, gt=0, description="open time before a retry")
    redis_min_inference_us: float = Field(
        default=150.0,
        ge=0,
        description="use Redis only for models whose measured per-call inference exceeds this (a Redis round "
        "trip costs about this much); cheaper models use the in-process tier only. 0: Redis for every model",
    )
    cache_ttl_seconds: int = Field(default=3600, ge=1)
    local_cache_entries: int = Field(
        default=10_000, ge=0, description="in-process LRU size per model; 0: off"
    )
    response_cache_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=0,
        description="per model, whole responses to repeated identical requests, answered before parsing "
        "(at most local_cache_entries of them); 0 or local_cache_entries=0: off",
    )

    # Jobs and quotas (inference_service.jobs, inference_service.quotas)
    jobs_redis_url: str = Field(
        default="",
        description="the job store and quota counters: a persistent, noeviction Redis (never the cache's); "
        "empty: no jobs API and no quotas",
    )
    jobs_redis_password_file: Path | None = Field(default=None, description="file holding its password")
    jobs_redis_timeout_ms: float = Field(default=500.0, gt=0, description="ceiling on one jobs Redis call")
    jobs_prefix: str = Field(
        default="jobs",
        pattern=r"^[a-z0-9-]{1,68}$",
        description="key prefix: the stream, consumer group, dead letters and job records of one service "
        "(the manifests give each service its own, `jobs-<service>`)",
    )
    jobs_visibility_timeout_seconds: float = Field(
        default=30.0, gt=0, description="a job idle this long (its worker died or stalled) is reclaimed"
    )
    jobs_max_attempts: int = Field(default=3, ge=1, description="deliveries before the dead-letter stream")
    jobs_result_ttl_seconds: int = Field(default=86400, ge=1, description="finished jobs are kept this long")
    jobs_worker_concurrency: int = Field(default=64, ge=1, description="jobs one worker runs at once")
    jobs_max_request_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="a job's request body is kept in the jobs Redis until it finishes: larger ones get 413 "
        "at submit (max_body_bytes bounds it too)",
    )
    jobs_max_result_bytes: int = Field(
        default=8 * 1024 * 1024,
        gt=0,
        description="a job whose result is bound to be larger is refused at submit (413); one whose result "
        "turns out larger fails on its first attempt with that reason (results are kept for the result TTL)",
    )
    quota_requests_per_minute: int = Field(default=0, ge=0, description="per caller; 0: no limit")
    quota_rows_per_day: int = Field(default=0, ge=0, description="per caller, rows inferred; 0: no limit")
    quota_fail_open: bool = Field(
        default=False, description="quota store unreachable: admit (true) or refuse with 503 (false)"
    )
    quota_store_startup_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        description="quotas that fail closed: at startup, readiness waits this long at most for the quota "
        "store to answer, so a new pod takes no traffic it would refuse with 503 while its first connection "
        "is still being made (a NetworkPolicy agent may drop a new pod's first packets); then ready anyway",
    )

    # Throughput
    max_batch_size: int = Field(default=32, ge=1)
    max_batch_wait_ms: float = Field(
        default=0.0, ge=0, description="extra wait for a fuller batch; 0: batch only what queued meanwhile"
    )
    inline_inference_max_us: float = Field(
        default=50.0,
        ge=0,
        description="models whose measured per-call inference is below this run on the event loop thread "
        "(a thread handoff costs more); others on their own model thread. 0: always off the loop",
    )
    ort_intra_op_threads: int = Field(default=1, ge=0, description="0: onnxruntime's default")
    ort_inter_op_threads: int = Field(default=1, ge=0)
    execution_providers: str = Field(
        default="CPUExecutionProvider",
        description="comma-separated, in order of preference; unavailable ones are skipped "
        "(e.g. CUDAExecutionProvider,CPUExecutionProvider)",
    )
    shutdown_drain_seconds: float = Field(default=20.0, ge=0, description="time in-flight requests get")

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            if not _MODEL_REF.match(item):
                raise ValueError(
                    f"INFERENCE_MODELS entry {item!r} is not `name:version` (e.g. breast-cancer:1)"
                )
        return value

    @cached_property
    def model_refs(self) -> list[tuple[str, str]]:
        """INFERENCE_MODELS parsed into (name, version) pairs, in the given order."""
        refs = []
        for item in filter(None, (part.strip() for part in self.models.split(","))):
            match = _MODEL_REF.match(item)
            assert match is not None  # checked by the validator
            refs.append((match["name"], match["version"]))
        return refs

    @cached_property
    def provider_list(self) -> list[str]:
        return [p.strip() for p in self.execution_providers.split(",") if p.strip()]

    def load_api_keys(self) -> list[bytes]:
        """Keys from the file (one a line, `#` comments) and INFERENCE_API_KEYS; errors name the file."""
        keys = [k.strip() for k in self.api_keys.get_secret_value().split(",")]
        if self.api_keys_file is not None:
            try:
                text = self.api_keys_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"INFERENCE_API_KEYS_FILE {self.api_keys_file}: cannot read: {exc}") from exc
            keys.extend(line.strip() for line in text.splitlines() if not line.lstrip().startswith("#"))
        return sorted({k.encode() for k in keys if k})

    def load_metrics_token(self) -> bytes | None:
        """The scraper's token (the file's first line, else INFERENCE_METRICS_TOKEN); errors name the file."""
        token = self.metrics_token.get_secret_value().strip()
        if self.metrics_token_file is not None:
            try:
                token = self.metrics_token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(
                    f"INFERENCE_METRICS_TOKEN_FILE {self.metrics_token_file}: cannot read: {exc}"
                ) from exc
        return token.encode() or None

    def redis_password(self) -> str | None:
        if self.redis_password_file is None:
            return None
        try:
            return self.redis_password_file.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ValueError(
                f"INFERENCE_REDIS_PASSWORD_FILE {self.redis_password_file}: cannot read: {exc}"
            ) from exc

    def jobs_redis_password(self) -> str | None:
        if self.jobs_redis_password_file is None:
            return None
        try:
            return self.jobs_redis_password_file.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ValueError(
                f"INFERENCE_JOBS_REDIS_PASSWORD_FILE {self.jobs_redis_password_file}: cannot read: {exc}"
            ) from exc
