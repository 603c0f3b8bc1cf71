"""inference_service.fetch: a model version comes from its source only after both digests check out.

The https source is served by a real TLS server on a loopback port (a certificate made for the test with the
openssl CLI, trusted through SSL_CERT_FILE); the pvc source is a file in a folder standing for the claim.
"""

from __future__ import annotations

import http.server
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inference_service import fetch
from model_build import catalog

from .conftest import self_signed_cert, serve_https, sha256_hex, tar_of

MODEL = b"\x08\x07not-really-onnx-but-bytes-to-hash"
ARCHIVE = tar_of({"model.onnx": MODEL, "metadata.json": b'{"name": "m"}'})


def _entry(source: dict[str, Any], model_sha: str = sha256_hex(MODEL)) -> dict[str, Any]:
    return {"name": "m", "version": "3", "sha256": model_sha, "source": source}


@pytest.fixture
def claim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    sources = tmp_path / "sources"
    (sources / "models").mkdir(parents=True)
    monkeypatch.setattr(fetch, "SOURCES_DIR", sources)
    return sources / "models"


def test_a_pvc_source_is_verified_and_unpacked(claim: Path, tmp_path: Path) -> None:
    (claim / "m-3.tar").write_bytes(ARCHIVE)
    dest = tmp_path / "dest"
    dest.mkdir()
    source = {"kind": "pvc", "claim": "models", "path": "/m-3.tar", "sha256": sha256_hex(ARCHIVE)}
    folder = fetch.fetch_one(_entry(source), dest)
    assert folder == dest / "m" / "3"
    assert (folder / "model.onnx").read_bytes() == MODEL
    assert [p.name for p in dest.iterdir()] == ["m"]  # no scratch left behind


def test_on_a_shared_cache_a_verified_copy_is_kept_and_a_bad_one_replaced(
    claim: Path, tmp_path: Path
) -> None:
    (claim / "m-3.tar").write_bytes(ARCHIVE)
    source = {"kind": "pvc", "claim": "models", "path": "/m-3.tar", "sha256": sha256_hex(ARCHIVE)}
    dest = tmp_path / "cache"
    (dest / "m" / "3").mkdir(parents=True)
    (dest / "m" / "3" / "model.onnx").write_bytes(b"stale")
    assert (fetch.fetch_one(_entry(source), dest) / "model.onnx").read_bytes() == MODEL  # replaced
    (claim / "m-3.tar").unlink()  # the source is gone: the checked copy on the cache is enough
    assert (fetch.fetch_one(_entry(source), dest) / "model.onnx").read_bytes() == MODEL


def test_a_tampered_archive_is_refused_before_anything_is_unpacked(claim: Path, tmp_path: Path) -> None:
    (claim / "m-3.tar").write_bytes(ARCHIVE + b"\0" * 512)
    dest = tmp_path / "dest"
    dest.mkdir()
    source = {"kind": "pvc", "claim": "models", "path": "/m-3.tar", "sha256": sha256_hex(ARCHIVE)}
    with pytest.raises(fetch.FetchError, match=r"m:3 \(pvc\): sha256 [0-9a-f]{64} is not the catalog's"):
        fetch.fetch_one(_entry(source), dest)
    assert not (dest / "m" / "3").exists()


def test_a_model_that_is_not_the_catalogs_is_refused(claim: Path, tmp_path: Path) -> None:
    (claim / "m-3.tar").write_bytes(ARCHIVE)
    dest = tmp_path / "dest"
    dest.mkdir()
    source = {"kind": "pvc", "claim": "models", "path": "/m-3.tar", "sha256": sha256_hex(ARCHIVE)}
    with pytest.raises(fetch.FetchError, match=r"model\.onnx does not hash to the catalog's"):
        fetch.fetch_one(_entry(source, model_sha="0" * 64), dest)
    assert not (dest / "m" / "3").exists()


def test_a_path_out_of_the_claim_is_refused(claim: Path, tmp_path: Path) -> None:
    source = {"kind": "pvc", "claim": "models", "path": "/../../etc/passwd", "sha256": "0" * 64}
    with pytest.raises(fetch.FetchError, match="outside the claim"):
        fetch.fetch_one(_entry(source), tmp_path)


@pytest.fixture
def https_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    cert, key = self_signed_cert(tmp_path)
    blobs = {"/m-3.tar": ARCHIVE}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = blobs.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            pass

    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with serve_https(Handler, cert, key) as port:
        yield f"https://127.0.0.1:{port}"


def test_an_https_source_is_fetched_verified_and_unpacked(https_server: str, tmp_path: Path) -> None:
    source = {"kind": "https", "url": f"{https_server}/m-3.tar", "sha256": sha256_hex(ARCHIVE)}
    args = ["--dest", str(tmp_path), json.dumps(_entry(source))]
    assert fetch.main(args) == 0
    assert (tmp_path / "m" / "3" / "model.onnx").read_bytes() == MODEL


def test_an_https_source_with_another_digest_fails_the_init_container(
    https_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = {"kind": "https", "url": f"{https_server}/m-3.tar", "sha256": "1" * 64}
    assert fetch.main(["--dest", str(tmp_path), json.dumps(_entry(source))]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("inference_service.fetch: m:3 (https): sha256 ") and "nothing unpacked" in line
    assert not (tmp_path / "m" / "3").exists()


def test_plain_http_is_refused(tmp_path: Path) -> None:
    source = {"kind": "https", "url": "http://127.0.0.1:9/m.tar", "sha256": sha256_hex(ARCHIVE)}
    with pytest.raises(fetch.FetchError, match="only https:// is allowed"):
        fetch.fetch_one(_entry(source), tmp_path)


def test_the_build_keeps_registered_sources(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    registered = {
        "sha256": sha256_hex(MODEL),
        "source": {"kind": "https", "url": "https://e.x/m", "sha256": "2" * 64},
    }
    path.write_bytes(catalog.to_bytes({"m": {"3": registered}, "gone": {"1": catalog.entry("3" * 64)}}))
    catalog.write(path, built={("b", "1"): "4" * 64}, known={("b", "1")})
    assert catalog.read(path) == {"b": {"1": catalog.entry("4" * 64)}, "m": {"3": registered}}
