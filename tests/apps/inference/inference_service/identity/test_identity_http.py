"""OIDC tokens, API keys and the access policy against the real service over real HTTP (onnxruntime
sessions on the built models), with an issuer whose keys are generated in the test and whose JWKS is
served over HTTP on loopback."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from typing import Any

import httpx

INFER = "/v2/models/breast-cancer/infer"
EMBED = "/v2/models/minilm-embedding/infer"
TABULAR_SCOPE = {"scope": "openid inference:tabular"}


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_valid_token_infers_and_is_audited_without_the_token(service, issuer, tabular_body) -> None:
    token = issuer.token(**TABULAR_SCOPE)
    response = service.client.post(INFER, json=tabular_body, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["name"] == "label"
    meta = service.client.get("/v2/models/breast-cancer/versions/1", headers=bearer(token))
    assert meta.status_code == 200
    line = service.audit_line(response.headers["x-request-id"])
    assert line["logger"] == "audit"
    assert (line["principal"], line["subject"], line["issuer"]) == ("token", "alice", issuer.claims()["iss"])
    assert (line["model"], line["version"], line["action"], line["decision"]) == (
        "breast-cancer",
        "1",
        "infer",
        "allow",
    )
    text = service.audit.read_text()
    assert token not in text and token.split(".")[2] not in text


def test_expired_not_yet_valid_and_leeway(service, issuer, tabular_body) -> None:
    now = int(time.time())
    expired = issuer.token(exp=now - 120, iat=now - 700, nbf=now - 700, **TABULAR_SCOPE)
    response = service.client.post(INFER, json=tabular_body, headers=bearer(expired))
    assert response.status_code == 401
    assert "expired" in response.json()["error"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert service.audit_line(response.headers["x-request-id"])["reason"] == "token expired"
    # Within the 30 s leeway: still accepted.
    recent = issuer.token(exp=now - 5, iat=now - 600, nbf=now - 600, **TABULAR_SCOPE)
    assert service.client.post(INFER, json=tabular_body, headers=bearer(recent)).status_code == 200
    future = issuer.token(nbf=now + 300, **TABULAR_SCOPE)
    response = service.client.post(INFER, json=tabular_body, headers=bearer(future))
    assert response.status_code == 401 and "not yet valid" in response.json()["error"]


def test_wrong_audience_issuer_and_missing_claims(service, issuer, tabular_body) -> None:
    cases = {
        "audience": issuer.token(aud="another-api", **TABULAR_SCOPE),
        "issuer": issuer.token(iss="https://evil.example.test/", **TABULAR_SCOPE),
        "missing": issuer.token(sub=None, **TABULAR_SCOPE),
    }
    for expected, token in cases.items():
        response = service.client.post(INFER, json=tabular_body, headers=bearer(token))
        assert response.status_code == 401, expected
        assert expected in response.json()["error"] or "claim" in response.json()["error"], expected


def test_algorithm_confusion_none_and_tampering(service, issuer, tabular_body) -> None:
    claims = issuer.claims(**TABULAR_SCOPE)
    forgeries = {
        "hs256-with-pem": issuer.hs256_forgery(issuer.public_pem("rsa-1"), "rsa-1", claims),
        "hs256-with-jwk": issuer.hs256_forgery(json.dumps(issuer.jwk("rsa-1")).encode(), "rsa-1", claims),
    }
    head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT","kid":"rsa-1"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forgeries["none"] = f"{head}.{body}."
    # A real token whose payload is swapped for one granting more (the signature no longer matches).
    real = issuer.token(scope="openid").split(".")
    forgeries["tampered"] = f"{real[0]}.{body}.{real[2]}"
    for name, token in forgeries.items():
        response = service.client.post(INFER, json=tabular_body, headers=bearer(token))
        assert response.status_code == 401, name
        error = response.json()["error"]
        assert "signature" in error if name == "tampered" else "not allowed" in error, (name, error)


def test_missing_scope_is_403_and_reveals_no_models(service, issuer, tabular_body, text_body) -> None:
    token = issuer.token(scope="openid inference:other")
    response = service.client.post(INFER, json=tabular_body, headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["error"] == "not allowed: action 'infer' on model 'breast-cancer'"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    # The same answer, not a 404 naming the served models, for a model that does not exist.
    ghost = service.client.post("/v2/models/ghost/infer", json=tabular_body, headers=bearer(token))
    assert ghost.status_code == 403
    assert ghost.json()["error"] == "not allowed: action 'infer' on model 'ghost'"
    # A tabular caller may use breast-cancer (metadata too) but not the embedding model nor the API doc.
    tabular = issuer.token(**TABULAR_SCOPE)
    assert service.client.post(EMBED, json=text_body, headers=bearer(tabular)).status_code == 403
    assert service.client.get("/openapi.json", headers=bearer(tabular)).status_code == 403
    denied = service.client.get("/v2/models/ghost", headers=bearer(tabular))
    assert denied.status_code == 403 and "minilm" not in denied.text
    # Group and nested-role claims grant what the policy says.
    embedder = issuer.token(groups=["embedders"])
    assert service.client.post(EMBED, json=text_body, headers=bearer(embedder)).status_code == 200
    assert service.client.post(INFER, json=tabular_body, headers=bearer(embedder)).status_code == 403
    # Jobs are an action of their own: a caller granted infer may not queue jobs, nor read one by id.
    jobs = service.client.post("/v2/models/breast-cancer/jobs", json=tabular_body, headers=bearer(tabular))
    assert jobs.status_code == 403
    assert jobs.json()["error"] == "not allowed: action 'jobs' on model 'breast-cancer'"
    assert service.client.get("/v2/jobs/0123abcd", headers=bearer(tabular)).status_code == 403
    admin = issuer.token(realm_access={"roles": ["ml-admin"]})
    assert service.client.get("/v2/jobs/0123abcd", headers=bearer(admin)).status_code not in (401, 403)
    assert service.client.get("/openapi.json", headers=bearer(admin)).status_code == 200
    unknown = service.client.post("/v2/models/ghost/infer", json=tabular_body, headers=bearer(admin))
    assert unknown.status_code == 404  # allowed everything: may learn what exists


def test_api_keys_each_with_their_own_models(service, tabular_body, text_body) -> None:
    ci = {"X-API-Key": "ci-key-0123456789"}
    assert service.client.post(INFER, json=tabular_body, headers=ci).status_code == 200
    other = service.client.post(EMBED, json=text_body, headers=ci)
    assert other.status_code == 403
    assert other.json()["error"] == "not allowed: action 'infer' on model 'minilm-embedding'"
    line = service.audit_line(other.headers["x-request-id"])
    assert (line["principal"], line["key_id"], line["decision"], line["reason"]) == (
        "key",
        "ci",
        "deny",
        "not granted",
    )
    # ci may infer on version 1 only, and not read metadata.
    assert service.client.get("/v2/models/breast-cancer", headers=ci).status_code == 403
    admin = bearer("admin-key-0123456789")
    assert service.client.post(EMBED, json=text_body, headers=admin).status_code == 200
    # A key without an id and no "*" entry in the policy is known (not 401) but granted nothing.
    legacy = service.client.post(INFER, json=tabular_body, headers=bearer("legacy-key-0123456789"))
    assert legacy.status_code == 403
    assert service.audit_line(legacy.headers["x-request-id"])["key_id"].startswith("key-")
    wrong = service.client.post(INFER, json=tabular_body, headers=bearer("nope"))
    assert wrong.status_code == 401 and "API key" in wrong.json()["error"]
    assert service.client.post(INFER, json=tabular_body).status_code == 401
    text = service.audit.read_text()
    assert "ci-key-0123456789" not in text and "admin-key" not in text and "legacy-key" not in text


def test_health_stays_open_and_metrics_take_only_the_scrapers_token(service, issuer) -> None:
    """/metrics names the served models in its labels: no anonymous caller, API key or OIDC token (even one
    granted every model) reads it; the scraper's own token does."""
    for path in ("/v2/health/live", "/v2/health/ready"):
        assert service.client.get(path).status_code == 200, path
    admin_token = issuer.token(realm_access={"roles": ["ml-admin"]})
    for headers in (
        {},
        bearer("admin-key-0123456789"),
        bearer(admin_token),
        {"X-API-Key": "scraper-token-0123456789"},
    ):
        response = service.client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert "breast-cancer" not in response.text and response.headers["www-authenticate"].startswith(
            "Bearer"
        )
    twice = [("Authorization", "Bearer scraper-token-0123456789")] * 2
    assert service.client.get("/metrics", headers=twice).status_code == 401
    scraped = service.client.get("/metrics", headers=bearer("scraper-token-0123456789"))
    assert scraped.status_code == 200 and "inference_request_duration_seconds" in scraped.text


def test_unknown_kid_refreshes_the_jwks_rate_limited(service, issuer, tabular_body) -> None:
    time.sleep(1.1)  # past the refresh interval of any earlier refresh
    issuer.add_key("ec-2", kind="ec")  # the issuer publishes a new key (ES256)
    before = issuer.fetches
    response = service.client.post(
        INFER, json=tabular_body, headers=bearer(issuer.token("ec-2", **TABULAR_SCOPE))
    )
    assert response.status_code == 200, response.text
    assert issuer.fetches == before + 1
    # Tokens naming kids nobody published: refused, and together at most one more fetch per second.
    issuer.add_key("never-published", publish=False)
    before = issuer.fetches
    started = time.monotonic()
    for _ in range(20):
        made_up = issuer.token("never-published", **TABULAR_SCOPE)
        assert service.client.post(INFER, json=tabular_body, headers=bearer(made_up)).status_code == 401
    elapsed = time.monotonic() - started
    assert issuer.fetches - before <= int(elapsed) + 1


def test_jwks_rotation_while_serving(service, issuer, tabular_body) -> None:
    """Requests keep flowing while the issuer adds a key and then retires the old one: the new key's tokens
    are accepted from its first request, the old key's (cached) tokens are refused once the set drops it."""
    old = issuer.token("rsa-1", **TABULAR_SCOPE)
    statuses: dict[str, list[int]] = {"old": [], "new": []}
    stop = threading.Event()
    new_token: list[str] = []

    def load() -> None:
        with httpx.Client(base_url=service.base, timeout=30) as client:
            while not stop.is_set():
                statuses["old"].append(client.post(INFER, json=tabular_body, headers=bearer(old)).status_code)
                if new_token:
                    r = client.post(INFER, json=tabular_body, headers=bearer(new_token[0]))
                    statuses["new"].append(r.status_code)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(0.5)
        # The issuer publishes rsa-3 beside rsa-1 and signs with it a refresh interval later (as issuers
        # do: a key is announced before use). Either a refresh in between picked it up, or the first token
        # naming it finds the interval passed and refreshes.
        issuer.add_key("rsa-3")
        time.sleep(1.1)
        new_token.append(issuer.token("rsa-3", **TABULAR_SCOPE))
        time.sleep(0.5)
        assert statuses["new"] and set(statuses["new"]) == {200}
        assert set(statuses["old"]) == {200}
        issuer.published.remove("rsa-1")  # retired: the next refresh (max age 2 s) drops it
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and statuses["old"][-1] != 401:
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert statuses["old"][-1] == 401
    first_refusal = statuses["old"].index(401)
    assert set(statuses["old"][first_refusal:]) == {401}  # once refused, never accepted again
    assert set(statuses["new"]) == {200}  # the new key's tokens never failed during the rotation
    fresh = issuer.token("rsa-3", **TABULAR_SCOPE)
    assert service.client.post(INFER, json=tabular_body, headers=bearer(fresh)).status_code == 200


def test_every_decision_has_one_audit_line(service, issuer, tabular_body) -> None:
    ids: list[str] = []
    got: list[int] = []
    for headers in (bearer(issuer.token(**TABULAR_SCOPE)), {"X-API-Key": "ci-key-0123456789"}, {}):
        response = service.client.post(INFER, json=tabular_body, headers=headers)
        ids.append(response.headers["x-request-id"])
        got.append(response.status_code)
    for request_id in ids:
        service.audit_line(request_id)
    lines: list[dict[str, Any]] = [json.loads(line) for line in service.audit.read_text().splitlines()]
    for request_id in ids:
        assert sum(1 for line in lines if line["request_id"] == request_id) == 1
    assert {"time", "principal", "model", "action", "decision", "reason", "request_id"} <= set(lines[-2])
    statuses = {line["request_id"]: line["status"] for line in lines}
    assert [statuses[i] for i in ids] == got and got[1:] == [200, 401]  # what each got, never null
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", lines[-1]["time"])
