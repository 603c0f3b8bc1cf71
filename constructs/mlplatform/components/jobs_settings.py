"""The INFERENCE_JOBS_* and INFERENCE_QUOTA_* settings an environment that enables jobs gives its pods."""

from __future__ import annotations

from mlplatform import names
from mlplatform.components.pods import JOBS_REDIS_PASSWORD_DIR, REDIS_PASSWORD_KEY
from mlplatform.schema import Environment
from mlplatform.schema.platform import REDIS_PORT

QUOTA_PREFIX = "INFERENCE_QUOTA_"
#: The jobs Redis as the API and the workers reach it (same namespace).
JOBS_REDIS_URL = f"redis://{names.JOBS_REDIS}:{REDIS_PORT}/0"


def jobs_settings(env: Environment, service: str) -> dict[str, str]:
    """INFERENCE_JOBS_* and INFERENCE_QUOTA_* where the overlay enables jobs (the API and its workers).

    Each service has its own key prefix, so its own stream and consumer group: a worker never sees another
    service's jobs (it would fail them with 'unknown model' and dead-letter them). Quotas stay per caller,
    across services (their keys do not use the prefix)."""
    jobs, quotas = env.overlay.jobs, env.overlay.quotas
    if not jobs.enabled:
        return {}
    data = {
        "INFERENCE_JOBS_PREFIX": names.ServiceNames(service).jobs_prefix,
        "INFERENCE_JOBS_REDIS_URL": JOBS_REDIS_URL,
        "INFERENCE_JOBS_REDIS_PASSWORD_FILE": f"{JOBS_REDIS_PASSWORD_DIR}/{REDIS_PASSWORD_KEY}",
        f"{QUOTA_PREFIX}REQUESTS_PER_MINUTE": str(quotas.requests_per_minute),
        f"{QUOTA_PREFIX}ROWS_PER_DAY": str(quotas.rows_per_day),
        f"{QUOTA_PREFIX}FAIL_OPEN": "true" if quotas.fail_open else "false",
        "INFERENCE_JOBS_MAX_REQUEST_BYTES": str(jobs.max_request_bytes),
        "INFERENCE_JOBS_MAX_RESULT_BYTES": str(jobs.max_result_bytes),
    }
    for key, value in (
        ("INFERENCE_JOBS_VISIBILITY_TIMEOUT_SECONDS", jobs.visibility_timeout_seconds),
        ("INFERENCE_JOBS_MAX_ATTEMPTS", jobs.max_attempts),
        ("INFERENCE_JOBS_RESULT_TTL_SECONDS", jobs.result_ttl_seconds),
    ):
        if value is not None:
            data[key] = str(value)
    return data
