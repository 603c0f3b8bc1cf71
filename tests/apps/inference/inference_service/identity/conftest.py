"""Fixtures for the identity tests: an OIDC issuer made in the test (its own keys, a JWKS served over real
HTTP on loopback) and the real service process (`python -m inference_service`) configured against it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.processes import free_port
from tests.support.service import running_service

ISSUER = "https://idp.example.test/realms/ml"
AUDIENCE = "inference-api"
METRICS_TOKEN = "scraper-token-0123456789"
KEYS = "ci:ci-key-0123456789,admin:admin-key-0123456789,legacy-key-0123456789"
POLICY = {
    "rules": [
        {
            "claim": "scope",
            "values": ["inference:tabular"],
            "models": ["breast-cancer"],
            "actions": ["infer", "metadata"],
        },
        {"claim": "groups", "values": ["embedders"], "models": ["minilm-embedding:1"], "actions": ["infer"]},
        {
            "claim": "realm_access.roles",
            "values": ["ml-admin"],
            "models": ["*"],
            "actions": ["infer", "jobs", "metadata"],
        },
    ],
    "api_keys": {
        "ci": {"models": ["breast-cancer:1"], "actions": ["infer"]},
        "admin": {"models": ["*"], "actions": ["infer", "jobs", "metadata"]},
    },
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """Signing keys made here; `jwks` is what the JWKS endpoint serves (tests rotate it)."""

    def __init__(self) -> None:
        self.private: dict[str, Any] = {}
        self.published: list[str] = []
        self.fetches = 0
        self.add_key("rsa-1")

    def add_key(self, kid: str, kind: str = "rsa", publish: bool = True) -> None:
        if kind == "rsa":
            self.private[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.private[kid] = ec.generate_private_key(ec.SECP256R1())
        if publish:
            self.published.append(kid)

    def jwk(self, kid: str) -> dict[str, Any]:
        key = self.private[kid]
        if isinstance(key, rsa.RSAPrivateKey):
            jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            jwk["alg"] = "RS256"
        else:
            jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            jwk["alg"] = "ES256"
        return {**jwk, "kid": kid, "use": "sig"}

    def jwks(self) -> bytes:
        return json.dumps({"keys": [self.jwk(kid) for kid in self.published]}).encode()

    def public_pem(self, kid: str) -> bytes:
        return (
            self.private[kid]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "nbf": now, "exp": now + 600}
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def token(self, kid: str = "rsa-1", **claims: Any) -> str:
        key = self.private[kid]
        alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(self.claims(**claims), key, algorithm=alg, headers={"kid": kid})

    @staticmethod
    def hs256_forgery(secret: bytes, kid: str, claims: dict[str, Any]) -> str:
        """A token signed with HMAC over `secret` (e.g. the public key): the algorithm-confusion attack."""
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        body = b64(json.dumps(claims).encode())
        mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64(mac)}"


class JwksServer:
    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = outer.issuer.jwks()
                outer.issuer.fetches += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Service:
    def __init__(self, proc: subprocess.Popen[bytes], base: str, audit: Path) -> None:
        self.proc = proc
        self.base = base
        self.audit = audit
        self.client = httpx.Client(base_url=base, timeout=30)

    def audit_line(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The audit line of one request (lines are written in batches: wait for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.audit.read_text().splitlines():
                record = json.loads(line)
                if record.get("request_id") == request_id:
                    return dict(record)
            time.sleep(0.05)
        raise AssertionError(f"no audit line for request {request_id}")


def start_service(model_repository: Path, tmp: Path, **settings: str) -> Iterator[Service]:
    audit = tmp / "audit.log"
    audit.touch()
    (tmp / "policy.json").write_text(json.dumps(POLICY))
    with running_service(
        model_repository,
        settings={
            "models": "breast-cancer:1,minilm-embedding:1",
            "access_log": "false",
            "api_keys": KEYS,
            "oidc_issuer": ISSUER,
            "oidc_audience": AUDIENCE,
            "access_policy_file": tmp / "policy.json",
            "audit_log": audit,
            **settings,
        },
        stderr=tmp / "stderr.log",
    ) as running:
        service = Service(running.process, running.base, audit)
        yield service
        service.client.close()


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="module")
def jwks_server(issuer: Issuer) -> Iterator[JwksServer]:
    server = JwksServer(issuer)
    yield server
    server.close()


@pytest.fixture(scope="module")
def service(
    model_repository: Path, tmp_path_factory: pytest.TempPathFactory, jwks_server: JwksServer
) -> Iterator[Service]:
    """One service for the module: JWKS by URL, refreshes at most once a second."""
    yield from start_service(
        model_repository,
        tmp_path_factory.mktemp("identity"),
        oidc_jwks_url=jwks_server.url,
        oidc_jwks_refresh_min_seconds="1",
        oidc_jwks_max_age_seconds="2",
        metrics_token=METRICS_TOKEN,
    )


@pytest.fixture(scope="module")
def tabular_body() -> dict[str, Any]:
    from sklearn.datasets import load_breast_cancer

    row = [float(v) for v in load_breast_cancer().data[0]]
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": row}]}


@pytest.fixture(scope="module")
def text_body() -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["hello"]}]}


@pytest.fixture(scope="module")
def grpc_service(
    model_repository: Path, tmp_path_factory: pytest.TempPathFactory, jwks_server: JwksServer
) -> Iterator[tuple[Service, str]]:
    """The same service with its gRPC endpoint on a free port: yields it and the gRPC address."""
    port = free_port()
    for running in start_service(
        model_repository,
        tmp_path_factory.mktemp("identity-grpc"),
        oidc_jwks_url=jwks_server.url,
        grpc_port=str(port),
    ):
        yield running, f"127.0.0.1:{port}"
