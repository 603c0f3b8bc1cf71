"""inference_service.fetch, oci kind, against a real OCI registry: distribution's `registry`
(tools/registry/).

The registry listens on a free loopback port with TLS (a certificate made for the test with the openssl CLI,
trusted through SSL_CERT_FILE) and keeps its blobs in a temporary folder. The test pushes the model tars the
way any OCI client would, through the registry's own HTTP API: each blob with POST then PUT ?digest=, the
empty config, and an image manifest with one layer. A second registry asks for a bearer token (its `auth:
token:` mode, keys from a JWKS file); a small token endpoint here signs RS256 tokens with PyJWT.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import RSAAlgorithm

from inference_service import fetch
from tests.support.processes import free_port, started

from .conftest import self_signed_cert, serve_https, sha256_hex, tar_of

REPO = Path(__file__).resolve().parents[5]
REGISTRY = REPO / ".tools" / "bin" / "registry"
REPOSITORY = "models/m"
EMPTY_CONFIG = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"


MODEL = b"\x08\x07not-really-onnx-but-bytes-to-hash"
ARCHIVE = tar_of({"model.onnx": MODEL, "metadata.json": b'{"name": "m"}'})
# Pushed fine and listed in its manifest, but its model.onnx is not the catalog's model.
OTHER_ARCHIVE = tar_of({"model.onnx": b"another model", "metadata.json": b'{"name": "m"}'})
# In the repository, but in no manifest.
LOOSE_BLOB = tar_of({"model.onnx": MODEL})


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:PORT
    manifest: str  # sha256:... of the manifest whose one layer is ARCHIVE
    other_manifest: str  # sha256:... of the manifest whose one layer is OTHER_ARCHIVE
    log: Path

    def reference(self, digest: str) -> str:
        return f"{self.host}/{REPOSITORY}@{digest}"


def _call(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    return urllib.request.urlopen(request, timeout=30)


def _push_blob(base: str, data: bytes, auth: dict[str, str]) -> str:
    digest = f"sha256:{sha256_hex(data)}"
    with _call("POST", f"{base}/v2/{REPOSITORY}/blobs/uploads/", None, auth) as started:
        assert started.status == 202
        location = urllib.parse.urljoin(base, started.headers["Location"])
    separator = "&" if "?" in location else "?"
    headers = {**auth, "Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
    with _call("PUT", f"{location}{separator}digest={digest}", data, headers) as done:
        assert done.status == 201 and done.headers["Docker-Content-Digest"] == digest
    return digest


def _push_model(base: str, archive: bytes, tag: str, auth: dict[str, str]) -> str:
    """Pushes ARCHIVE as a one-layer OCI artifact; returns the manifest's digest as the registry names it."""
    config = _push_blob(base, EMPTY_CONFIG, auth)
    layer = _push_blob(base, archive, auth)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": fetch.OCI_MANIFEST,
            "artifactType": "application/vnd.mlplatform.model.v1",
            "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": config, "size": len(EMPTY_CONFIG)},
            "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer, "size": len(archive)}],
        }
    ).encode()
    headers = {**auth, "Content-Type": fetch.OCI_MANIFEST}
    with _call("PUT", f"{base}/v2/{REPOSITORY}/manifests/{tag}", manifest, headers) as done:
        assert done.status == 201
        digest = str(done.headers["Docker-Content-Digest"])
    assert digest == f"sha256:{sha256_hex(manifest)}"
    return digest


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path  # RSA: signs the tokens too


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    """One certificate for 127.0.0.1 (both registries and the token endpoint), trusted via SSL_CERT_FILE."""
    if not REGISTRY.exists():
        pytest.fail(f"{REGISTRY} is missing; run tools/setup/registry-tool.sh", pytrace=False)
    assert shutil.which("openssl"), "the openssl CLI makes the certificate"
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(cert))  # read by every new TLS context, the subprocess's too
        yield Tls(cert, key)


def _signing_key(tls: Tls) -> RSAPrivateKey:
    key = serialization.load_pem_private_key(tls.key.read_bytes(), password=None)
    assert isinstance(key, RSAPrivateKey)
    return key


def _jwks(tls: Tls) -> dict[str, Any]:
    """The public half of the TLS key as a JWKS (PyJWT's JWK encoding), the registry's token keys."""
    jwk = RSAAlgorithm.to_jwk(_signing_key(tls).public_key(), as_dict=True)
    return {"keys": [{**jwk, "kid": "test-key", "alg": "RS256", "use": "sig"}]}


def _token(tls: Tls, scope: str, *, issuer: str = "test-issuer") -> str:
    """An RS256 JSON Web Token for the registry, granting what SCOPE (repository:NAME:ACTIONS) asks."""
    kind, name, actions = scope.split(":")
    now = int(time.time())
    claims = {
        **{"iss": issuer, "sub": "fetch", "aud": "test-registry", "exp": now + 300, "nbf": now, "iat": now},
        **{
            "jti": str(time.monotonic_ns()),
            "access": [{"type": kind, "name": name, "actions": actions.split(",")}],
        },
    }
    return jwt.encode(claims, _signing_key(tls), algorithm="RS256", headers={"kid": "test-key"})


@dataclass
class TokenEndpoint:
    url: str
    asked: list[dict[str, list[str]]]  # the query of every token request
    issuer: str = "test-issuer"  # what the tokens it signs claim; the registry trusts only test-issuer


@contextmanager
def _token_endpoint(tls: Tls) -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint(url="", asked=[])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            endpoint.asked.append(query)
            token = _token(tls, query.get("scope", ["repository::"])[0], issuer=endpoint.issuer)
            body = json.dumps({"token": token, "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with serve_https(Handler, tls.cert, tls.key) as port:
        endpoint.url = f"https://127.0.0.1:{port}/token"
        yield endpoint


@contextmanager
def _registry(
    tls: Tls, work: Path, auth: dict[str, Any] | None, push_auth: dict[str, str]
) -> Iterator[Registry]:
    """Starts `registry serve` with its own config file and storage, pushes the test's artifacts, stops it."""
    port = free_port()
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(work / "storage")}},
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": "test-upload-secret",
            "tls": {"certificate": str(tls.cert), "key": str(tls.key)},
        },
    }
    if auth:
        config["auth"] = auth
    (work / "config.yml").write_text(json.dumps(config))  # YAML is a superset of JSON
    log = work / "registry.log"
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "true"}
    base = f"https://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with _call("GET", f"{base}/v2/") as answer:
                assert answer.status == 200
                return True
        except urllib.error.HTTPError as err:
            assert auth and err.code == 401, err  # up, and asking for a token
            return True
        except OSError:
            return False

    with started(
        [str(REGISTRY), "serve", str(work / "config.yml")],
        ready=answers,
        what=f"{base}/v2/",
        timeout_s=30,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        interval_s=0.1,
    ):
        manifest = _push_model(base, ARCHIVE, "3", push_auth)
        other = _push_model(base, OTHER_ARCHIVE, "other", push_auth)
        _push_blob(base, LOOSE_BLOB, push_auth)
        yield Registry(host=f"127.0.0.1:{port}", manifest=manifest, other_manifest=other, log=log)


@pytest.fixture(scope="module")
def registry(tls: Tls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry that serves anyone."""
    with _registry(tls, tmp_path_factory.mktemp("registry"), None, {}) as started:
        yield started


@pytest.fixture(scope="module")
def token_endpoint(tls: Tls) -> Iterator[TokenEndpoint]:
    with _token_endpoint(tls) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def token_registry(
    tls: Tls, token_endpoint: TokenEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    """A registry that answers 401 with a bearer-token challenge naming the token endpoint as its realm."""
    work = tmp_path_factory.mktemp("token-registry")
    (work / "jwks.json").write_text(json.dumps(_jwks(tls)))
    auth = {
        "token": {
            **{"realm": token_endpoint.url, "service": "test-registry", "issuer": "test-issuer"},
            **{"jwks": str(work / "jwks.json"), "signingalgorithms": ["RS256"]},
        }
    }
    push = {"Authorization": f"Bearer {_token(tls, f'repository:{REPOSITORY}:pull,push')}"}
    with _registry(tls, work, auth, push) as started:
        yield started


def _entry(source: dict[str, Any]) -> dict[str, Any]:
    return {"name": "m", "version": "3", "sha256": sha256_hex(MODEL), "source": source}


def _oci(reference: str, layer: bytes) -> dict[str, Any]:
    return {"kind": "oci", "reference": reference, "sha256": sha256_hex(layer)}


def _files(dest: Path) -> list[Path]:
    return [path for path in dest.rglob("*") if not path.is_dir()]


def test_an_oci_artifact_is_pulled_verified_and_unpacked(registry: Registry, tmp_path: Path) -> None:
    folder = fetch.fetch_one(_entry(_oci(registry.reference(registry.manifest), ARCHIVE)), tmp_path)
    assert folder == tmp_path / "m" / "3"
    assert (folder / "model.onnx").read_bytes() == MODEL
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.onnx"]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no scratch left behind


def test_the_init_container_command_pulls_from_the_registry(registry: Registry, tmp_path: Path) -> None:
    entry = _entry(_oci(registry.reference(registry.manifest), ARCHIVE))
    run = subprocess.run(
        [sys.executable, "-m", "inference_service.fetch", "--dest", str(tmp_path), json.dumps(entry)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"inference_service.fetch: verified and unpacked {tmp_path / 'm' / '3'}\n"
    assert (tmp_path / "m" / "3" / "model.onnx").read_bytes() == MODEL


def test_a_reference_to_another_manifest_fails_the_init_container(registry: Registry, tmp_path: Path) -> None:
    unknown = f"sha256:{sha256_hex(b'a manifest nobody pushed')}"
    entry = _entry(_oci(registry.reference(unknown), ARCHIVE))
    run = subprocess.run(
        [sys.executable, "-m", "inference_service.fetch", "--dest", str(tmp_path), json.dumps(entry)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    (line,) = run.stderr.splitlines()
    assert line.startswith("inference_service.fetch: m:3 (oci): cannot read the source: HTTP Error 404"), line
    assert _files(tmp_path) == []


def test_a_layer_the_manifest_does_not_list_is_refused(registry: Registry, tmp_path: Path) -> None:
    # LOOSE_BLOB is in the repository and hashes to the catalog's sha256: only the manifest check refuses it.
    with _call(
        "GET", f"https://{registry.host}/v2/{REPOSITORY}/blobs/sha256:{sha256_hex(LOOSE_BLOB)}"
    ) as blob:
        assert blob.read() == LOOSE_BLOB
    source = _oci(registry.reference(registry.manifest), LOOSE_BLOB)
    with pytest.raises(fetch.FetchError) as refused:
        fetch.fetch_one(_entry(source), tmp_path)
    message = str(refused.value)
    assert message.startswith("m:3 (oci): ") and "\n" not in message
    assert f"no layer sha256:{sha256_hex(LOOSE_BLOB)} in the manifest" in message
    assert _files(tmp_path) == []


def test_a_listed_layer_with_another_model_is_refused(registry: Registry, tmp_path: Path) -> None:
    source = _oci(registry.reference(registry.other_manifest), OTHER_ARCHIVE)
    with pytest.raises(fetch.FetchError, match=r"^m:3 \(oci\): model\.onnx does not hash to the catalog's"):
        fetch.fetch_one(_entry(source), tmp_path)
    assert _files(tmp_path) == []
    assert not (tmp_path / "m" / "3").exists()


def test_a_registry_asking_for_a_bearer_token_gets_one_and_serves_the_artifact(
    token_registry: Registry, token_endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    with pytest.raises(urllib.error.HTTPError) as anonymous:  # the registry does ask
        _call("GET", f"https://{token_registry.host}/v2/{REPOSITORY}/manifests/{token_registry.manifest}")
    assert anonymous.value.code == 401
    assert anonymous.value.headers["WWW-Authenticate"].startswith(f'Bearer realm="{token_endpoint.url}"')
    token_endpoint.asked.clear()
    folder = fetch.fetch_one(
        _entry(_oci(token_registry.reference(token_registry.manifest), ARCHIVE)), tmp_path
    )
    assert (folder / "model.onnx").read_bytes() == MODEL
    # One token, asked once for the manifest and used for the blob too.
    assert token_endpoint.asked == [
        {"service": ["test-registry"], "scope": [f"repository:{REPOSITORY}:pull"]}
    ]


def test_a_token_the_registry_does_not_trust_is_refused(
    token_registry: Registry, token_endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    token_endpoint.issuer = "someone-else"
    try:
        source = _oci(token_registry.reference(token_registry.manifest), ARCHIVE)
        with pytest.raises(fetch.FetchError, match=r"^m:3 \(oci\): cannot read the source: HTTP Error 401"):
            fetch.fetch_one(_entry(source), tmp_path)
    finally:
        token_endpoint.issuer = "test-issuer"
    assert _files(tmp_path) == []
