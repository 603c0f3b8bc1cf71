"""The model build: reproducible bytes, recorded metrics, incremental skips, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from inference_service.repository_format import ModelMetadata, sha256_file
from model_build.__main__ import RECIPES, BuildError, ModelRecipe, build_model, main

TABULAR = next(r for r in RECIPES if (r.name, r.version) == ("breast-cancer", "1"))
TABULAR_V2 = next(r for r in RECIPES if (r.name, r.version) == ("breast-cancer", "2"))


def test_tabular_build_is_reproducible_and_records_metrics(tmp_path) -> None:
    # Separate processes with different string-hash seeds: set iteration order must not leak into the bytes.
    for seed in ("0", "6"):  # these two seeds gave different opset orders before the fix
        out = tmp_path / seed
        subprocess.run(
            [sys.executable, "-m", "model_build", "--out", str(out), "--only", "breast-cancer",
             "--catalog", str(out / "catalog.json")],
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
        )  # fmt: skip
    assert build_model(TABULAR, tmp_path / "a") is True
    assert build_model(TABULAR_V2, tmp_path / "a") is True
    for version in ("1", "2"):
        for name in ("model.onnx", "metadata.json"):
            digests = {sha256_file(tmp_path / d / "breast-cancer" / version / name) for d in ("0", "6", "a")}
            assert len(digests) == 1, (version, name)
        meta = ModelMetadata.read(tmp_path / "a/breast-cancer" / version / "metadata.json")
        assert meta.model_sha256 == sha256_file(tmp_path / "a/breast-cancer" / version / "model.onnx")
        assert meta.details["holdout_accuracy"] > 0.9 and meta.details["holdout_f1"] > 0.9
        assert meta.details["holdout_roc_auc"] > 0.95
        assert meta.details["onnx_sklearn_agreement"] == 1.0
        assert len(meta.details["feature_names"]) == 30 == meta.inputs[0].shape[1]
    assert (tmp_path / "0/catalog.json").read_bytes() == (tmp_path / "6/catalog.json").read_bytes()


def test_version_2_is_another_model_with_the_same_signature(tmp_path) -> None:
    build_model(TABULAR, tmp_path)
    build_model(TABULAR_V2, tmp_path)
    v1, v2 = (ModelMetadata.read(tmp_path / f"breast-cancer/{v}/metadata.json") for v in ("1", "2"))
    assert (v1.inputs, v1.outputs) == (v2.inputs, v2.outputs)  # a canary answers the same requests
    assert v1.model_sha256 != v2.model_sha256
    assert "StandardScaler" in v2.details["estimator"] and "GradientBoosting" in v1.details["estimator"]
    # Different models: their probabilities differ on real rows, while both classify those rows well.
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = np.asarray(data.data[::7], dtype=np.float32)
    probs = []
    for version in ("1", "2"):
        session = ort.InferenceSession(str(tmp_path / f"breast-cancer/{version}/model.onnx"))
        labels, p = session.run(None, {"input": x})
        assert np.mean(labels == data.target[::7]) > 0.9
        probs.append(p)
    assert float(np.abs(probs[0] - probs[1]).max()) > 0.05


def test_second_build_is_skipped_until_something_changes(tmp_path) -> None:
    assert build_model(TABULAR, tmp_path) is True
    assert build_model(TABULAR, tmp_path) is False
    meta = tmp_path / "breast-cancer/1/metadata.json"
    meta.write_bytes(meta.read_bytes().replace(b'"1"', b'"1" '))  # tampered output
    assert build_model(TABULAR, tmp_path) is True
    assert json.loads(meta.read_bytes())["version"] == "1"


def test_missing_builder_module_is_a_clear_error(tmp_path) -> None:
    ghost = ModelRecipe(name="ghost", version="1", module="no_such_builder", libraries=())
    with pytest.raises(BuildError, match=r"model_build\.no_such_builder does not exist"):
        build_model(ghost, tmp_path)
    assert not (tmp_path / "ghost/1").exists()


def test_missing_builder_function_is_a_clear_error(tmp_path) -> None:
    ghost = ModelRecipe(name="ghost", version="1", module="tabular", function="build_v9", libraries=())
    with pytest.raises(BuildError, match=r"model_build\.tabular has no build_v9\(out_dir\) function"):
        build_model(ghost, tmp_path)


def test_cli_rejects_unknown_models(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--only", "nope"])
    assert "unknown model" in capsys.readouterr().err
