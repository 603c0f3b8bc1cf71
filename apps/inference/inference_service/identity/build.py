"""The Gate from the settings: fails fast, naming the setting, on an incomplete or unsafe configuration."""

from __future__ import annotations

from collections.abc import Mapping

from inference_service.identity.audit import AuditLog, open_stream
from inference_service.identity.gate import Gate
from inference_service.identity.jwks import JwksCache
from inference_service.identity.keys import KeyRing
from inference_service.identity.policy import AccessPolicy
from inference_service.identity.tokens import TokenVerifier
from inference_service.settings import Settings


def build_gate(settings: Settings, live: Mapping[str, str]) -> Gate:
    keys = KeyRing(settings.load_api_keys())
    policy = AccessPolicy.load(settings.access_policy_file, settings.access_policy)
    tokens: TokenVerifier | None = None
    if settings.oidc_issuer:
        if not settings.oidc_audience:
            raise ValueError("INFERENCE_OIDC_ISSUER is set but INFERENCE_OIDC_AUDIENCE is empty")
        algorithms = frozenset(a.strip() for a in settings.oidc_algorithms.split(",") if a.strip())
        jwks = JwksCache(
            file=settings.oidc_jwks_file,
            url=settings.oidc_jwks_url,
            algorithms=algorithms,
            min_interval=settings.oidc_jwks_refresh_min_seconds,
            max_age=settings.oidc_jwks_max_age_seconds,
        )
        tokens = TokenVerifier(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            algorithms=algorithms,
            jwks=jwks,
            leeway=settings.oidc_leeway_seconds,
            permissions=policy.for_claims,
            max_entries=settings.token_cache_entries,
        )
        jwks.load()
    elif settings.oidc_jwks_file is not None or settings.oidc_jwks_url or settings.oidc_audience:
        raise ValueError(
            "INFERENCE_OIDC_AUDIENCE, _JWKS_FILE or _JWKS_URL is set but INFERENCE_OIDC_ISSUER is not"
        )
    if not len(keys) and tokens is None:
        raise ValueError(
            "authentication is on (INFERENCE_AUTH_ENABLED=true) but no API key is configured: set "
            "INFERENCE_API_KEYS_FILE or INFERENCE_API_KEYS (or INFERENCE_OIDC_ISSUER for tokens), or "
            "INFERENCE_AUTH_ENABLED=false for local use"
        )
    audit = AuditLog(open_stream(settings.audit_log))
    return Gate(keys=keys, policy=policy, tokens=tokens, audit=audit, live=live)
