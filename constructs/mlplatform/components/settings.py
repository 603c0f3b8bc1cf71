"""The INFERENCE_* settings of a service's ConfigMap (its API's) and of its job worker's: every setting the
generator writes is built here, named by `mlplatform.runtime_contract` (which mirrors the service's
settings.py), from the narrow `SettingsProps`.

- The API: models, gRPC port, connection limits, its mounted secrets (API keys, the scraper's token, the
  cache's password), tuning (platform.yaml's, overridden by the overlay's), jobs and quotas where the overlay
  enables jobs, identity where the service has one.
- Its job worker: the same model, ORT and jobs settings; no API keys, tokens, identity or quotas (callers
  never reach a worker; quotas are counted at submit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlplatform import names
from mlplatform.runtime_contract import (
    ACCESS_POLICY_FILE,
    API_KEYS_DIR,
    API_KEYS_FILE,
    AUDIT_LOG,
    CONNECTION_LIMITS,
    GRPC_PORT,
    IDENTITY_DIR,
    IDENTITY_SETTINGS,
    JOBS_REDIS_PASSWORD_DIR,
    JWKS_FILE,
    METRICS_TOKEN_DIR,
    METRICS_TOKEN_FILE,
    MODEL_DIR,
    QUOTA_SETTINGS,
    REDIS_PASSWORD_DIR,
    REDIS_PASSWORD_FILE,
    REDIS_PORT,
    Setting,
)

if TYPE_CHECKING:
    from mlplatform.schema.identity import Identity
    from mlplatform.schema.overlay import Jobs, Quotas
    from mlplatform.schema.platform import Model, Tuning

#: The jobs Redis as the API and the workers reach it (same namespace).
JOBS_REDIS_URL = f"redis://{names.JOBS_REDIS}:{REDIS_PORT}/0"
#: The cache as the API reaches it (same namespace).
REDIS_URL = f"redis://{names.REDIS}:{REDIS_PORT}/0"
TUNING = (
    (Setting.CACHE_TTL_SECONDS, "cache_ttl_seconds"),
    (Setting.MAX_BATCH_SIZE, "max_batch_size"),
    (Setting.MAX_BATCH_WAIT_MS, "max_batch_wait_ms"),
    (Setting.ORT_INTRA_OP_THREADS, "ort_intra_op_threads"),
)


@dataclass(frozen=True, kw_only=True, slots=True)
class SettingsProps:
    """What a service's settings depend on."""

    service: str
    models: tuple[Model, ...]
    #: The pods serve gRPC (the service's `grpc`, runtime `deployment`).
    grpc: bool
    #: A ServiceMonitor scrapes the service with its token.
    metrics_token: bool
    use_cache: bool
    #: platform.yaml's tuning, and the overlay's, which overrides it field by field.
    tuning: Tuning
    tuning_override: Tuning
    #: The overlay's jobs and quotas where it enables jobs; None otherwise.
    jobs: Jobs | None
    quotas: Quotas
    identity: Identity | None


def api_settings(props: SettingsProps) -> dict[str, str]:
    """INFERENCE_* settings of the service's API pods (README "Runtime contract"), sorted by name."""
    data = {
        Setting.GRPC_PORT: str(GRPC_PORT if props.grpc else 0),
        Setting.MODEL_REPOSITORY: MODEL_DIR,
        Setting.MODELS: ",".join(f"{m.name}:{m.version}" for m in props.models),
        Setting.API_KEYS_FILE: f"{API_KEYS_DIR}/{API_KEYS_FILE}",
        **CONNECTION_LIMITS,
    }
    if props.metrics_token:
        data[Setting.METRICS_TOKEN_FILE] = f"{METRICS_TOKEN_DIR}/{METRICS_TOKEN_FILE}"
    if props.use_cache:
        data[Setting.REDIS_URL] = REDIS_URL
        data[Setting.REDIS_PASSWORD_FILE] = f"{REDIS_PASSWORD_DIR}/{REDIS_PASSWORD_FILE}"
    data |= _tuning(props.tuning, props.tuning_override)
    data |= jobs_settings(props)
    if props.identity is not None:
        data |= identity_settings(props.identity)
    return dict(sorted(data.items()))


def worker_settings(props: SettingsProps) -> dict[str, str]:
    """The API's settings less API keys, tokens, identity and quotas: callers never reach a worker."""
    dropped = {Setting.API_KEYS_FILE, Setting.METRICS_TOKEN_FILE, *IDENTITY_SETTINGS, *QUOTA_SETTINGS}
    return {k: v for k, v in api_settings(props).items() if k not in dropped}


def _tuning(base: Tuning, override: Tuning) -> dict[str, str]:
    """The overlay's tuning over platform.yaml's, field by field; unset fields are left to the service."""
    data = {}
    for key, field in TUNING:
        value = getattr(override, field)
        value = getattr(base, field) if value is None else value
        if value is not None:
            data[key] = str(value)
    providers = override.execution_providers
    providers = base.execution_providers if providers is None else providers
    if providers is not None:
        data[Setting.EXECUTION_PROVIDERS] = ",".join(providers)
    return data


def jobs_settings(props: SettingsProps) -> dict[str, str]:
    """INFERENCE_JOBS_* and INFERENCE_QUOTA_* where the overlay enables jobs (the API and its workers).

    Each service has its own key prefix, so its own stream and consumer group: a worker never sees another
    service's jobs (it would fail them with 'unknown model' and dead-letter them). Quotas stay per caller,
    across services (their keys do not use the prefix)."""
    jobs, quotas = props.jobs, props.quotas
    if jobs is None:
        return {}
    data = {
        Setting.JOBS_PREFIX: names.ServiceNames(props.service).jobs_prefix,
        Setting.JOBS_REDIS_URL: JOBS_REDIS_URL,
        Setting.JOBS_REDIS_PASSWORD_FILE: f"{JOBS_REDIS_PASSWORD_DIR}/{REDIS_PASSWORD_FILE}",
        Setting.QUOTA_REQUESTS_PER_MINUTE: str(quotas.requests_per_minute),
        Setting.QUOTA_ROWS_PER_DAY: str(quotas.rows_per_day),
        Setting.QUOTA_FAIL_OPEN: "true" if quotas.fail_open else "false",
        Setting.JOBS_MAX_REQUEST_BYTES: str(jobs.max_request_bytes),
        Setting.JOBS_MAX_RESULT_BYTES: str(jobs.max_result_bytes),
    }
    for key, value in (
        (Setting.JOBS_VISIBILITY_TIMEOUT_SECONDS, jobs.visibility_timeout_seconds),
        (Setting.JOBS_MAX_ATTEMPTS, jobs.max_attempts),
        (Setting.JOBS_RESULT_TTL_SECONDS, jobs.result_ttl_seconds),
    ):
        if value is not None:
            data[key] = str(value)
    return data


def identity_settings(identity: Identity) -> dict[str, str]:
    """INFERENCE_OIDC_*, the access policy and the audit log (components/identity.py mounts the files)."""
    data = {
        Setting.OIDC_ISSUER: identity.issuer,
        Setting.OIDC_AUDIENCE: identity.audience,
        Setting.OIDC_ALGORITHMS: ",".join(identity.algorithms),
        Setting.ACCESS_POLICY_FILE: f"{IDENTITY_DIR}/{ACCESS_POLICY_FILE}",
        Setting.AUDIT_LOG: AUDIT_LOG,
    }
    if identity.jwks.url is not None:
        data[Setting.OIDC_JWKS_URL] = identity.jwks.url
    else:
        data[Setting.OIDC_JWKS_FILE] = f"{IDENTITY_DIR}/{JWKS_FILE}"
    return data
