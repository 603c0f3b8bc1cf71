"""The identity parts on their own: policy documents, request classification, key ids, JWKS parsing, the
verified-token cache, and the configuration errors the service refuses to start with."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from inference_service.identity.build import build_gate
from inference_service.identity.jwks import JwksCache, check_url, parse_jwks
from inference_service.identity.keys import KeyRing
from inference_service.identity.policy import AccessPolicy, claim_values
from inference_service.identity.requests import Action, classify
from inference_service.identity.tokens import TokenError, TokenVerifier
from inference_service.settings import Settings

ALGS = frozenset({"RS256", "ES256"})


def test_policy_errors_name_the_source_and_field() -> None:
    bad = {"rules": [{"claim": "groups", "values": ["a"], "models": ["x"], "actions": ["predict"]}]}
    with pytest.raises(ValueError, match=r"policy.json: access policy field rules\.0\.actions\.0: .*infer"):
        AccessPolicy.parse(json.dumps(bad), "policy.json")
    with pytest.raises(ValueError, match=r"api_keys: .*'Bad Id'"):
        AccessPolicy.parse('{"api_keys": {"Bad Id": {"models": ["*"], "actions": ["infer"]}}}', "p")
    with pytest.raises(ValueError, match=r"api_keys\.a\.models: .*'x:latest'"):
        AccessPolicy.parse('{"api_keys": {"a": {"models": ["x:latest"], "actions": ["infer"]}}}', "p")
    with pytest.raises(ValueError, match="field rule: Extra inputs are not permitted"):
        AccessPolicy.parse('{"rule": []}', "p")


def test_grants_by_model_version_and_action() -> None:
    policy = AccessPolicy.parse(
        json.dumps(
            {
                "rules": [{"claim": "scope", "values": ["s"], "models": ["a", "b:2"], "actions": ["infer"]}],
                "api_keys": {"k": {"models": ["c:1"], "actions": ["metadata", "jobs"]}},
            }
        ),
        "p",
    )
    token = policy.for_claims({"scope": "openid s"})
    assert token.allows(Action.INFER, "a", "7") and token.allows(Action.INFER, "a", "")
    assert token.allows(Action.INFER, "b", "2") and not token.allows(Action.INFER, "b", "1")
    assert not token.allows(Action.INFER, "b", "") and not token.allows(Action.METADATA, "a", "1")
    assert not policy.for_claims({"scope": "openid"})
    key = policy.for_key("k")
    assert key.allows(Action.JOBS, "c", "1") and not key.allows(Action.INFER, "c", "1")
    assert key.any(Action.JOBS) and not key.any(Action.INFER)
    assert not policy.for_key("other")  # no "*" entry: nothing
    everyone = AccessPolicy.load(None, "")  # no policy: every key everything, tokens nothing
    assert everyone.for_key("any").allows(Action.INFER, "x", "1")
    assert not everyone.for_claims({"groups": ["admins"]})


def test_claim_values() -> None:
    claims = {"scope": "a b", "groups": ["g", 3], "realm_access": {"roles": ["r"]}, "n": 1}
    assert claim_values(claims, "scope") == {"a", "b"}
    assert claim_values(claims, "groups") == {"g"}
    assert claim_values(claims, "realm_access.roles") == {"r"}
    assert claim_values(claims, "n") == set() and claim_values(claims, "missing.x") == set()


def test_classify_paths() -> None:
    def kind(method: str, path: str) -> tuple[str | None, str | None, str | None]:
        r = classify(method, path)
        return (r.action.value if r.action else None, r.model, r.version)

    assert kind("POST", "/v2/models/m/infer") == ("infer", "m", None)
    assert kind("POST", "/v2/models/m/versions/2/infer") == ("infer", "m", "2")
    assert kind("POST", "/v1/models/m:predict") == ("infer", "m", None)
    assert kind("GET", "/v2/models/m") == ("metadata", "m", None)
    assert kind("GET", "/v2/models/m/versions/3/ready") == ("metadata", "m", "3")
    assert kind("GET", "/v1/models/m") == ("metadata", "m", None)
    assert kind("POST", "/v2/models/m/jobs") == ("jobs", "m", None)
    assert kind("GET", "/v2/jobs/abc") == ("jobs", None, None)
    assert kind("GET", "/v2") == (None, None, None)
    assert kind("GET", "/v2/models/m/other") == (None, None, None)


def test_key_ids_and_constant_time_lookup() -> None:
    ring = KeyRing([b"ci:secret-one", b"plain-key"])
    assert ring.identify(b"secret-one") == "ci"
    assert ring.identify(b"plain-key") is not None and ring.identify(b"plain-key").startswith("key-")
    assert "plain-key" not in ring.identify(b"plain-key")
    assert ring.identify(b"ci:secret-one") is None and ring.identify(b"secret") is None


def _rsa_jwk(kid: str) -> tuple[rsa.RSAPrivateKey, dict[str, object]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "alg": "RS256"}


def test_jwks_keeps_only_asymmetric_allowed_signing_keys() -> None:
    _, good = _rsa_jwk("good")
    keys = [
        good,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
        {**good, "kid": "enc", "use": "enc"},
        {**good, "kid": "ps", "alg": "PS512"},
        {k: v for k, v in good.items() if k != "kid"},
    ]
    parsed = parse_jwks(json.dumps({"keys": keys}).encode(), ALGS, "test")
    assert sorted(parsed) == ["good"]
    with pytest.raises(ValueError, match=r"JWKS test: expected"):
        parse_jwks(b"[]", ALGS, "test")
    with pytest.raises(ValueError, match="not JSON"):
        parse_jwks(b"{", ALGS, "test")


def test_jwks_url_must_be_https_or_loopback() -> None:
    assert check_url("https://idp.example.test/certs")
    assert check_url("http://127.0.0.1:8000/jwks")
    for url in ("http://idp.example.test/certs", "file:///etc/passwd", "https://"):
        with pytest.raises(ValueError, match="must be https"):
            check_url(url)


def test_verified_tokens_are_cached_bounded_and_until_expiry(tmp_path) -> None:
    key, jwk = _rsa_jwk("k1")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    jwks = JwksCache(file=tmp_path / "jwks.json", url="", algorithms=ALGS, min_interval=0, max_age=3600)
    jwks.load()
    policy = AccessPolicy.load(None, "")
    verifier = TokenVerifier(
        issuer="iss",
        audience="aud",
        algorithms=ALGS,
        jwks=jwks,
        leeway=0,
        permissions=policy.for_claims,
        max_entries=2,
    )

    def token(sub: str, ttl: float) -> bytes:
        claims = {"iss": "iss", "aud": "aud", "sub": sub, "exp": int(time.time() + ttl)}
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"}).encode()

    async def run() -> None:
        first = token("a", 60)
        verified = await verifier.verify(first)
        assert verified.subject == "a" and await verifier.verify(first) is verified  # from the cache
        await verifier.verify(token("b", 60))
        await verifier.verify(token("c", 60))
        assert len(verifier) == 2  # bounded: the oldest went
        assert await verifier.verify(first) is not verified  # verified again
        short = token("d", 1)
        assert (await verifier.verify(short)).subject == "d"
        await asyncio.sleep(max(0.0, int(time.time()) + 2 - time.time()))  # past its exp
        with pytest.raises(TokenError, match="expired"):  # the cached entry is not used past exp
            await verifier.verify(short)

    asyncio.run(run())


OIDC = {"oidc_issuer": "i", "oidc_audience": "a", "oidc_jwks_url": "https://x/j"}
UNSAFE = [
    ({**OIDC, "oidc_algorithms": "RS256,HS256"}, "HS256 not allowed"),
    ({**OIDC, "oidc_algorithms": "none"}, "none not allowed"),
    ({"oidc_issuer": "i", "oidc_jwks_url": "https://x/j"}, "AUDIENCE is empty"),
    ({"oidc_issuer": "i", "oidc_audience": "a"}, "exactly one"),
    ({**OIDC, "oidc_jwks_url": "http://idp.example.test/j"}, "must be https"),
    ({"oidc_jwks_url": "https://x/j"}, "OIDC_ISSUER is not"),
    ({"oidc_issuer": "i", "oidc_audience": "a", "oidc_jwks_file": "MISSING"}, "JWKS_FILE .*cannot read"),
    ({"access_policy_file": "MISSING"}, "ACCESS_POLICY_FILE .*cannot read"),
    ({"access_policy": '{"rules": 1}'}, "INFERENCE_ACCESS_POLICY: access policy field rules"),
]


@pytest.mark.parametrize(("settings", "message"), UNSAFE)
def test_unsafe_configurations_refuse_to_start(model_repository, tmp_path, settings, message) -> None:
    values = {k: tmp_path / "missing" if v == "MISSING" else v for k, v in settings.items()}
    with pytest.raises(ValueError, match=message):
        build_gate(
            Settings(model_repository=model_repository, api_keys="k", **values), {"breast-cancer": "1"}
        )


def test_the_gate_names_the_principal_for_jobs_and_quotas(model_repository, tmp_path) -> None:
    policy = '{"api_keys": {"ci": {"models": ["breast-cancer"], "actions": ["infer"]}}}'
    settings = Settings(
        model_repository=model_repository, api_keys="ci:k-one,k-two", access_policy=policy,
        audit_log=str(tmp_path / "audit"),
    )  # fmt: skip
    gate = build_gate(settings, {"breast-cancer": "1"})

    def scope(key: bytes) -> dict[str, object]:
        return {"method": "POST", "path": "/v2/models/breast-cancer/infer", "headers": [(b"x-api-key", key)]}

    allowed = scope(b"k-one")
    assert asyncio.run(gate.refuse(allowed, b"r1")) is None
    assert allowed["principal"] == "key:ci"
    forbidden, unknown = scope(b"k-two"), scope(b"k-three")
    refusal = asyncio.run(gate.refuse(forbidden, b"r2"))
    assert refusal is not None and refusal.status == 403  # known (principal named), not granted
    assert forbidden["principal"].startswith("key:key-")
    refusal = asyncio.run(gate.refuse(unknown, b"r3"))
    assert refusal is not None and refusal.status == 401 and "principal" not in unknown


def test_jwks_file_is_reread_on_an_unknown_kid_at_most_once_per_interval(tmp_path) -> None:
    path = tmp_path / "jwks.json"
    _, first = _rsa_jwk("k1")
    _, second = _rsa_jwk("k2")
    path.write_text(json.dumps({"keys": [first]}))
    jwks = JwksCache(file=path, url="", algorithms=ALGS, min_interval=60, max_age=3600)
    jwks.load()
    assert sorted(jwks.keys) == ["k1"] and jwks.fetches == 1
    path.write_text(json.dumps({"keys": [first, second]}))  # the mounted ConfigMap was updated

    async def run() -> None:
        generation = jwks.generation
        assert await jwks.key("k1") is not None and jwks.fetches == 1  # known: no read
        assert await jwks.key("k2") is not None and jwks.fetches == 2  # unknown: read again
        assert jwks.generation == generation + 1
        assert await jwks.key("k3") is None and jwks.fetches == 2  # within the interval: no read
        path.write_text("not json")
        jwks._attempted_at = -float("inf")  # as if the interval had passed
        assert await jwks.key("k3") is None and jwks.fetches == 3
        assert sorted(jwks.keys) == ["k1", "k2"]  # a failed refresh keeps the known keys

    asyncio.run(run())
