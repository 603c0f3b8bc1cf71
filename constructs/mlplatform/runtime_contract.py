"""The runtime contract between the manifests and the inference service: every value both sides must agree on,
defined here once for the generator.

It mirrors `apps/inference/inference_service/settings.py` (one pydantic-settings class, env_prefix
`INFERENCE_`): the names of the INFERENCE_* settings the generator writes into the services' ConfigMaps, the
ports the service listens on, the paths it finds its mounts at and the file names inside them, its HTTP
paths and the metric the load signals read. The generator never imports the service (import-linter):
tests/constructs/test_runtime_contract.py checks that each name here is a field of the service's settings.

A module with no imports: the constructs, the schema and the network plan all read it, none of them first.
"""

from __future__ import annotations

from typing import Final

#: The service's settings prefix (`Settings.model_config["env_prefix"]`).
PREFIX: Final = "INFERENCE_"


class Setting:
    """The INFERENCE_* settings the generator writes: `INFERENCE_` + the upper-cased `Settings` field."""

    # Models and serving
    MODEL_REPOSITORY: Final = "INFERENCE_MODEL_REPOSITORY"
    MODELS: Final = "INFERENCE_MODELS"
    GRPC_PORT: Final = "INFERENCE_GRPC_PORT"
    # Connection limits
    HEADER_TIMEOUT_SECONDS: Final = "INFERENCE_HEADER_TIMEOUT_SECONDS"
    IDLE_TIMEOUT_SECONDS: Final = "INFERENCE_IDLE_TIMEOUT_SECONDS"
    MAX_HEADER_BYTES: Final = "INFERENCE_MAX_HEADER_BYTES"
    MAX_CONNECTIONS: Final = "INFERENCE_MAX_CONNECTIONS"
    MAX_IN_FLIGHT: Final = "INFERENCE_MAX_IN_FLIGHT"
    # Mounted secrets
    API_KEYS_FILE: Final = "INFERENCE_API_KEYS_FILE"
    METRICS_TOKEN_FILE: Final = "INFERENCE_METRICS_TOKEN_FILE"  # noqa: S105  (a setting's name)
    # Cache
    REDIS_URL: Final = "INFERENCE_REDIS_URL"
    REDIS_PASSWORD_FILE: Final = "INFERENCE_REDIS_PASSWORD_FILE"  # noqa: S105  (a setting's name)
    # Tuning (platform.yaml `tuning`, an overlay may override it)
    CACHE_TTL_SECONDS: Final = "INFERENCE_CACHE_TTL_SECONDS"
    MAX_BATCH_SIZE: Final = "INFERENCE_MAX_BATCH_SIZE"
    MAX_BATCH_WAIT_MS: Final = "INFERENCE_MAX_BATCH_WAIT_MS"
    ORT_INTRA_OP_THREADS: Final = "INFERENCE_ORT_INTRA_OP_THREADS"
    EXECUTION_PROVIDERS: Final = "INFERENCE_EXECUTION_PROVIDERS"
    # Jobs and quotas
    JOBS_PREFIX: Final = "INFERENCE_JOBS_PREFIX"
    JOBS_REDIS_URL: Final = "INFERENCE_JOBS_REDIS_URL"
    JOBS_REDIS_PASSWORD_FILE: Final = "INFERENCE_JOBS_REDIS_PASSWORD_FILE"  # noqa: S105  (a setting's name)
    JOBS_MAX_REQUEST_BYTES: Final = "INFERENCE_JOBS_MAX_REQUEST_BYTES"
    JOBS_MAX_RESULT_BYTES: Final = "INFERENCE_JOBS_MAX_RESULT_BYTES"
    JOBS_VISIBILITY_TIMEOUT_SECONDS: Final = "INFERENCE_JOBS_VISIBILITY_TIMEOUT_SECONDS"
    JOBS_MAX_ATTEMPTS: Final = "INFERENCE_JOBS_MAX_ATTEMPTS"
    JOBS_RESULT_TTL_SECONDS: Final = "INFERENCE_JOBS_RESULT_TTL_SECONDS"
    QUOTA_REQUESTS_PER_MINUTE: Final = "INFERENCE_QUOTA_REQUESTS_PER_MINUTE"
    QUOTA_ROWS_PER_DAY: Final = "INFERENCE_QUOTA_ROWS_PER_DAY"
    QUOTA_FAIL_OPEN: Final = "INFERENCE_QUOTA_FAIL_OPEN"
    # Identity
    OIDC_ISSUER: Final = "INFERENCE_OIDC_ISSUER"
    OIDC_AUDIENCE: Final = "INFERENCE_OIDC_AUDIENCE"
    OIDC_ALGORITHMS: Final = "INFERENCE_OIDC_ALGORITHMS"
    OIDC_JWKS_FILE: Final = "INFERENCE_OIDC_JWKS_FILE"
    OIDC_JWKS_URL: Final = "INFERENCE_OIDC_JWKS_URL"
    ACCESS_POLICY_FILE: Final = "INFERENCE_ACCESS_POLICY_FILE"
    AUDIT_LOG: Final = "INFERENCE_AUDIT_LOG"


def setting_names() -> tuple[str, ...]:
    """Every INFERENCE_* name of `Setting`, in definition order."""
    return tuple(value for key, value in vars(Setting).items() if key.isupper())


#: Settings for callers: a job worker, which serves none, is given none of them.
IDENTITY_SETTINGS: Final = (
    Setting.OIDC_ISSUER,
    Setting.OIDC_AUDIENCE,
    Setting.OIDC_ALGORITHMS,
    Setting.OIDC_JWKS_FILE,
    Setting.OIDC_JWKS_URL,
    Setting.ACCESS_POLICY_FILE,
    Setting.AUDIT_LOG,
)
#: Quotas are counted where jobs are submitted (the API), never in a worker.
QUOTA_SETTINGS: Final = (
    Setting.QUOTA_REQUESTS_PER_MINUTE,
    Setting.QUOTA_ROWS_PER_DAY,
    Setting.QUOTA_FAIL_OPEN,
)

# Ports (README "Runtime contract")
#: The HTTP port (`Settings.port`'s default; the manifests leave it), named `http` in pods and Services.
INFERENCE_PORT: Final = 8080
HTTP_PORT_NAME: Final = "http"
#: The Open Inference Protocol over gRPC (INFERENCE_GRPC_PORT), where a service's `grpc` is on; named `grpc`.
GRPC_PORT: Final = 8081
GRPC_PORT_NAME: Final = "grpc"
#: The Redis cache's and the jobs Redis's port, in the service's Redis URLs.
REDIS_PORT: Final = 6379
REDIS_PORT_NAME: Final = "redis"

# Paths inside the inference pods, and the file names of the mounted secrets
MODEL_DIR: Final = "/models"  # INFERENCE_MODEL_REPOSITORY
TMP_DIR: Final = "/tmp"  # noqa: S108  (the one writable path of the runtime contract)
API_KEYS_DIR: Final = "/var/run/secrets/inference"
API_KEYS_FILE: Final = "api-keys"
METRICS_TOKEN_DIR: Final = "/var/run/secrets/metrics"  # noqa: S105  (a mount path, not a token)
METRICS_TOKEN_FILE: Final = "token"  # noqa: S105  (a file name)
#: The cache's password, where the inference pods and the Redis pods mount it.
REDIS_PASSWORD_DIR: Final = "/var/run/secrets/redis"  # noqa: S105  (a mount path, not a password)
REDIS_PASSWORD_FILE: Final = "password"  # noqa: S105  (a file name)
JOBS_REDIS_PASSWORD_DIR: Final = "/var/run/secrets/jobs-redis"  # noqa: S105  (a mount path)
#: One read-only projected volume: the access policy and the JWKS (in a subfolder: updated in place).
IDENTITY_DIR: Final = "/etc/inference/identity"
ACCESS_POLICY_FILE: Final = "access-policy.json"
JWKS_FILE: Final = "jwks/jwks.json"
#: The JWKS's key in the Secret an ExternalSecret fills.
JWKS_KEY: Final = "jwks.json"
#: Audit lines go to stderr, apart from the access log on stdout.
AUDIT_LOG: Final = "stderr"

# HTTP paths and the job worker
READY_PATH: Final = "/v2/health/ready"
LIVE_PATH: Final = "/v2/health/live"
METRICS_PATH: Final = "/metrics"
#: The job worker's entry point in the inference image (apps/inference/README.md "Jobs and quotas").
WORKER_COMMAND: Final = ("python", "-m", "inference_service.jobs.worker")
#: The model-source init container's verified fetch (the same image; `--dest DIR SOURCE_JSON...` follow).
FETCH_COMMAND: Final = ("python", "-m", "inference_service.fetch")
#: The service's own drain after SIGTERM (INFERENCE_SHUTDOWN_DRAIN_SECONDS, its default).
DRAIN_SECONDS: Final = 20
#: Connection limits every API pod runs with (apps/inference/README.md "Limits under hostile clients"):
#: written out so that what a pod enforces reads from its ConfigMap.
CONNECTION_LIMITS: Final = {
    Setting.HEADER_TIMEOUT_SECONDS: "10",
    Setting.IDLE_TIMEOUT_SECONDS: "5",
    Setting.MAX_HEADER_BYTES: "32768",
    Setting.MAX_CONNECTIONS: "1000",
    Setting.MAX_IN_FLIGHT: "256",
}

#: The series the load signals read (`signal: inFlight` and `requestRate`): the service's request latency
#: histogram (apps/inference: every HTTP and gRPC request, by route, model, status and protocol), over the
#: requests that name a model (`model` not empty: inference, metadata and jobs calls; not probes, scrapes or
#: server metadata). Its `_count` grows by one per request: its growth per second is the request rate. Its
#: `_sum` grows by each request's seconds in the server: its growth per second is the number of requests in
#: flight, averaged over the whole window (Little's law), where the `inference_requests_in_flight` gauge
#: would be one point sample per scrape, and would count the scrape itself.
LOAD_METRIC: Final = "inference_request_duration_seconds"
LOAD_LABEL: Final = "model"
