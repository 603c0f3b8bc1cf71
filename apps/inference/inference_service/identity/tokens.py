"""OIDC bearer tokens: JWTs verified with PyJWT against the issuer's JWKS, and a cache of verified tokens.

Checks: the header's `alg` is one of the allowed asymmetric algorithms and equals the algorithm the JWKS
key is bound to (PyJWT enforces the latter for a PyJWK: a token cannot pick HS256 and have the public key
used as an HMAC secret); the signature; `iss` and `aud` exactly; `exp`, `nbf` (and `iat`) with a small
leeway; `exp`, `iss`, `aud` and `sub` present. A verified token is cached until its `exp` (never longer),
at most `max_entries` of them (the oldest go first); a cached token is checked again once the JWKS changed,
so a key removed from the set stops its tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from jwt import PyJWK
from jwt import exceptions as jwt_errors

from inference_service.identity.jwks import JwksCache
from inference_service.identity.policy import Permissions

UNSAFE = frozenset({"none", "HS256", "HS384", "HS512"})


class TokenError(Exception):
    """Why a token was refused: a short reason for the 401 body and the audit line."""


class Verified:
    __slots__ = ("expires", "generation", "issuer", "key", "kid", "permissions", "principal", "subject")

    def __init__(
        self,
        *,
        subject: str,
        issuer: str,
        expires: float,
        kid: str,
        key: PyJWK,
        generation: int,
        permissions: Permissions,
    ) -> None:
        self.subject = subject
        self.issuer = issuer
        self.expires = expires
        self.kid = kid
        self.key = key
        self.generation = generation
        self.permissions = permissions
        self.principal = f"token:{issuer} {subject}"


_REASONS: list[tuple[type[Exception], str]] = [
    (jwt_errors.ExpiredSignatureError, "token expired"),
    (jwt_errors.ImmatureSignatureError, "token not yet valid (nbf/iat in the future)"),
    (jwt_errors.InvalidAudienceError, "wrong audience (aud)"),
    (jwt_errors.InvalidIssuerError, "wrong issuer (iss)"),
    (jwt_errors.MissingRequiredClaimError, "a required claim is missing (exp, iss, aud, sub)"),
    (jwt_errors.InvalidSignatureError, "bad signature"),
    (jwt_errors.InvalidAlgorithmError, "algorithm not allowed for this key"),
]


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        algorithms: frozenset[str],
        jwks: JwksCache,
        leeway: float,
        permissions: Callable[[Mapping[str, Any]], Permissions],
        max_entries: int = 10_000,
    ) -> None:
        bad = algorithms & UNSAFE
        if bad or not algorithms:
            raise ValueError(
                f"INFERENCE_OIDC_ALGORITHMS: {', '.join(sorted(bad)) or '(empty)'} not allowed "
                "(asymmetric only: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA)"
            )
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms
        self._algorithm_list = sorted(algorithms)
        self.jwks = jwks
        self.leeway = leeway
        self._permissions = permissions
        self.max_entries = max_entries
        self._cache: dict[bytes, Verified] = {}
        self._options: Any = {"require": ["exp", "iss", "aud", "sub"]}

    def __len__(self) -> int:
        return len(self._cache)

    def cached(self, token: bytes) -> Verified | None:
        """The token as verified before, while it is unexpired and its key still in the JWKS; else None.
        Synchronous: a warm request awaits nothing."""
        self.jwks.tick()
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires + self.leeway > time.time() and self._still_signed(cached):
                return cached
            del self._cache[token]
        return None

    async def verify(self, token: bytes) -> Verified:
        """The verified token (from the cache when it was verified before); TokenError says why not."""
        cached = self.cached(token)
        if cached is not None:
            return cached
        verified = await self._verify(token)
        if self.max_entries > 0:
            if len(self._cache) >= self.max_entries:
                del self._cache[next(iter(self._cache))]
            self._cache[token] = verified
        return verified

    def _still_signed(self, cached: Verified) -> bool:
        if cached.generation == self.jwks.generation:
            return True
        current = self.jwks.keys.get(cached.kid)
        if current is None or current.key != cached.key.key:
            return False
        cached.generation = self.jwks.generation
        return True

    async def _verify(self, token: bytes) -> Verified:
        try:
            header = jwt.get_unverified_header(token)
        except jwt_errors.PyJWTError:
            raise TokenError("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.algorithms:
            raise TokenError(f"algorithm {alg!r} not allowed (allowed: {', '.join(self._algorithm_list)})")
        if not isinstance(kid, str) or not kid:
            raise TokenError("the token header has no kid")
        generation = self.jwks.generation
        key = await self.jwks.key(kid)
        if key is None:
            raise TokenError("unknown signing key (kid)")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=self._algorithm_list,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options=self._options,
            )
        except jwt_errors.PyJWTError as exc:
            for kind, reason in _REASONS:
                if isinstance(exc, kind):
                    raise TokenError(reason) from None
            raise TokenError("invalid token") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenError("a required claim is missing (exp, iss, aud, sub)")
        return Verified(
            subject=subject,
            issuer=self.issuer,
            expires=float(claims["exp"]),
            kid=kid,
            key=key,
            generation=max(generation, self.jwks.generation),
            permissions=self._permissions(claims),
        )
