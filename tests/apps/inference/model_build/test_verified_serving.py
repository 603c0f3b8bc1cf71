"""Verified serving: a model file whose sha256 is not the one in its metadata.json is never served.

Real files, real onnxruntime: the tampered model below is a valid ONNX file that onnxruntime loads and runs
without complaint, so only the digest check can be what refuses it."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnxruntime as ort
import pytest

from inference_service.repository import ModelIntegrityError, discover
from inference_service.sessions import load_model
from inference_service.settings import Settings


def _tamper_doc_string(model: Path) -> None:
    """Changes one character of the model's doc string: same length, still a valid, loadable ONNX file."""
    data = model.read_bytes()
    marker = b"breast-cancer v1: GradientBoostingClassifier"
    assert data.count(marker) == 1
    model.write_bytes(data.replace(marker, b"breast-cancer v1: GradientBoostingClassifieR"))


def test_a_tampered_model_file_fails_readiness_with_one_log_line(model_repository, tmp_path, serve) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(model_repository / "breast-cancer/1", repo / "breast-cancer/1")
    model = repo / "breast-cancer/1/model.onnx"
    _tamper_doc_string(model)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])  # loads fine on its own
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]

    with serve(repo, "breast-cancer:1", until_ready=False) as server:
        assert server.status("/v2/health/live") == 503
        assert server.status("/v2/health/ready") == 503
    errors = [line for line in server.log_lines() if line.get("level") == "error" or "raw" in line]
    assert len(errors) == 1, errors
    (line,) = errors
    message = str(line["message"])
    assert str(model) in message and "does not match" in message and "breast-cancer:1" in message
    assert "exception" not in line  # one line, no traceback
    assert not any("ready:" in str(x.get("message")) for x in server.log_lines())


def test_the_same_copy_untampered_is_served(model_repository, tmp_path, serve) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(model_repository / "breast-cancer/1", repo / "breast-cancer/1")
    with serve(repo, "breast-cancer:1") as server:
        assert server.status("/v2/health/ready") == 200


def test_metadata_that_records_another_digest_is_refused(model_repository, tmp_path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(model_repository / "breast-cancer/2", repo / "breast-cancer/2")
    meta = repo / "breast-cancer/2/metadata.json"
    (entry,) = discover(repo, [("breast-cancer", "2")])
    meta.write_bytes(meta.read_bytes().replace(entry.metadata.model_sha256.encode(), b"0" * 64))
    (lying,) = discover(repo, [("breast-cancer", "2")])
    with pytest.raises(
        ModelIntegrityError, match=r"breast-cancer/2/model\.onnx: sha256 [0-9a-f]{64} does not"
    ):
        load_model(lying, Settings(model_repository=repo, auth_enabled=False))


def test_a_tampered_tokenizer_is_refused(model_repository, tmp_path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(model_repository / "minilm-embedding/1", repo / "minilm-embedding/1")
    tokenizer = repo / "minilm-embedding/1/tokenizer.json"
    text = tokenizer.read_text(encoding="utf-8")
    assert '"[UNK]"' in text
    tokenizer.write_text(text.replace('"[UNK]"', '"[UNX]"', 1), encoding="utf-8")  # still a valid tokenizer
    (entry,) = discover(repo, [("minilm-embedding", "1")])
    with pytest.raises(
        ModelIntegrityError, match=r"minilm-embedding/1/tokenizer\.json: sha256 .* does not match"
    ):
        load_model(entry, Settings(model_repository=repo, auth_enabled=False))
