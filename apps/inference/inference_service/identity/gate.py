"""Gate: authenticates a request (API key or OIDC token), authorizes it by the access policy, audits it.

The request middleware calls `Gate.refuse` once per request outside the open paths (health, metrics) and
sends the refusal it returns, if any. 401: no credentials, an unknown key, an invalid token. 403: a known
principal without a grant for the action on the model. A 403 reads the same whether the model exists or
not, and comes before any 404, so a caller learns only about models it may use.
A bearer value with two dots is taken for a JWT when tokens are configured, anything else for an API key.
An identified caller is named in `scope["principal"]` (`key:<id>` or `token:<issuer> <subject>`): what the
job API and the quotas count and scope per caller (inference_service.quotas.owner_of).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.types import Scope

from inference_service.identity.audit import AuditLog
from inference_service.identity.keys import KeyRing
from inference_service.identity.policy import AccessPolicy, Permissions
from inference_service.identity.requests import OPENAPI, Action, Request, classify
from inference_service.identity.tokens import TokenError, TokenVerifier
from inference_service.responses import CachedResponse, error_response

_UNAUTHENTICATED = (
    "missing or invalid credentials: send `Authorization: Bearer <API key or OIDC token>` or "
    "`X-API-Key: <API key>`"
)
#: Where `refuse` leaves the audit line of a request it let through, for `audited`.
AUDIT_PENDING = "inference.audit"
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="inference"')]
_INVALID_TOKEN = [(b"www-authenticate", b'Bearer realm="inference", error="invalid_token"')]
_INSUFFICIENT = [(b"www-authenticate", b'Bearer realm="inference", error="insufficient_scope"')]


class Refusal:
    __slots__ = ("headers", "message", "response", "status")

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.message = message  # what the gRPC endpoint sends as the status details
        self.response: CachedResponse = error_response(status, message)
        self.headers = headers


_DUPLICATE = (
    "send one credential: the request repeats the `{}` header, and a proxy that reads another copy than this "
    "service would decide differently"
)


def _credential(headers: list[tuple[bytes, bytes]]) -> tuple[bytes | None, bool, str | None]:
    """The presented credential, whether it came as a Bearer value (X-API-Key: always a key), and the name of
    a credential header given more than once (the request is then refused whatever the copies say)."""
    found: tuple[bytes | None, bool] | None = None
    seen: set[bytes] = set()
    for name, value in headers:
        if name == b"authorization" or name == b"x-api-key":
            if name in seen:
                return None, False, name.decode()
            seen.add(name)
            if found is not None:
                continue
            if name == b"x-api-key":
                found = value.strip() or None, False
            else:
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    found = token.strip() or None, True
    presented, bearer = found if found is not None else (None, False)
    return presented, bearer, None


class Gate:
    def __init__(
        self,
        *,
        keys: KeyRing,
        policy: AccessPolicy,
        tokens: TokenVerifier | None,
        audit: AuditLog | None,
        live: Mapping[str, str],
    ) -> None:
        self.keys = keys
        self.policy = policy
        self.tokens = tokens
        self.audit = audit
        self.live = dict(live)  # model name -> live version
        self._key_permissions = {key_id: policy.for_key(key_id) for key_id in keys.ids}
        self._requests: dict[
            tuple[str, str], Request
        ] = {}  # classify's answers, bounded like the policy memo

    async def refuse(self, scope: Scope, request_id: bytes) -> Refusal | None:
        """None to let the request through; else the refusal to send. Writes a refusal's audit line; a
        request let through has its line written by `audited` once its status is known."""
        presented, bearer, duplicate = _credential(scope["headers"])
        method: str = scope["method"]
        path: str = scope["path"]
        request = self._requests.get((method, path))
        if request is None:
            request = classify(method, path)
            if len(self._requests) < 1024:  # bounded whatever paths callers send
                self._requests[(method, path)] = request
        line: dict[str, Any] = {"request_id": request_id.decode(), "method": method, "path": path}
        rpc = scope.get("rpc")  # a gRPC call (inference_service.grpc): the method it called
        if rpc is not None:
            line["rpc"] = rpc
        if request.action is not None:
            line["action"] = request.action  # a StrEnum: written as its value
            line["model"] = request.model
        refusal: Refusal | None = None
        permissions: Permissions | None = None
        if duplicate is not None:
            refusal, reason = Refusal(400, _DUPLICATE.format(duplicate), []), f"duplicate {duplicate} header"
        elif presented is None:
            refusal, reason = Refusal(401, _UNAUTHENTICATED, _CHALLENGE), "no credentials"
        elif self.tokens is not None and bearer and presented.count(b".") == 2:
            line["principal"] = "token"
            try:
                verified = self.tokens.cached(presented) or await self.tokens.verify(presented)
            except TokenError as exc:
                reason = str(exc)
                refusal = Refusal(401, f"invalid token: {reason}", _INVALID_TOKEN)
            else:
                line["subject"], line["issuer"] = verified.subject, verified.issuer
                permissions = verified.permissions
                scope["principal"] = verified.principal
        else:
            line["principal"] = "key"
            key_id = self.keys.identify(presented)
            if key_id is None:
                refusal, reason = Refusal(401, _UNAUTHENTICATED, _CHALLENGE), "unknown API key"
            else:
                line["key_id"] = key_id
                permissions = self._key_permissions[key_id]
                scope["principal"] = f"key:{key_id}"
        if permissions is not None:
            refusal, reason = self._authorize(permissions, request, path, line)
        line["decision"] = "deny" if refusal is not None else "allow"
        line["reason"] = reason
        if self.audit is None:
            return refusal
        if refusal is None:
            scope[AUDIT_PENDING] = line
        else:
            line["status"] = refusal.status
            self.audit.write(line)
        return refusal

    def audited(self, scope: Scope, status: int) -> None:
        """Writes the audit line of a request `refuse` let through, with the status it got."""
        line = scope.pop(AUDIT_PENDING, None)
        if line is not None and self.audit is not None:
            line["status"] = status
            self.audit.write(line)

    def _authorize(
        self,
        permissions: Permissions,
        request: Request,
        path: str,
        line: dict[str, Any],
    ) -> tuple[Refusal | None, str]:
        action, model, version = request.action, request.model, request.version
        if action is not None and model is None:  # a job by id
            if permissions.any(action):
                return None, "granted"
            return Refusal(403, f"not allowed: action '{action.value}'", _INSUFFICIENT), "not granted"
        if action is None or model is None:
            if path == OPENAPI and not all(
                permissions.allows(Action.METADATA, name, v) for name, v in self.live.items()
            ):
                message = "not allowed: the API document describes every model; it needs metadata on all"
                return Refusal(403, message, _INSUFFICIENT), "metadata not granted on every model"
            return None, "authenticated"
        resolved = version if version is not None else self.live.get(model, "")
        line["version"] = resolved or version
        if permissions.allows(action, model, resolved):
            return None, "granted"
        which = f"model '{model}'" + (f" version '{version}'" if version is not None else "")
        return Refusal(403, f"not allowed: action '{action.value}' on {which}", _INSUFFICIENT), "not granted"
