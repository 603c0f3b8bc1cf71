"""Who calls, and what they may do: API keys and OIDC bearer tokens, a per-model access policy, an audit log.

tokens.py   JWT verification (PyJWT) against the issuer's JWKS; a bounded cache of verified tokens
jwks.py     the JWKS from a file or a URL, cached, refreshed on an unknown `kid` (rate limited)
keys.py     API keys, each with an id (`ID:KEY` entries), compared in constant time
policy.py   the access policy: claims and key ids -> models, versions, actions (infer, jobs, metadata)
requests.py which action, model and version a request path is
audit.py    one JSON line per decision on its own stream; never a token or a key
gate.py     Gate: the one call the REST front (and the gRPC service) makes (401 / 403 / pass); imports the
            responses floor (inference_service.responses), never the dataplane or the endpoints
"""
