"""`python -m model_build import`: third-party ONNX models the tests export themselves are imported with no
hand-written metadata, served by the real service and called with an unchanged Triton client; unsupported
signatures get one clear line each and leave nothing behind."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import orjson
import pytest
import tritonclient.http as triton
from onnx import TensorProto, helper

from inference_service.repository import discover
from inference_service.repository_format import ModelMetadata, sha256_file
from inference_service.sessions import load_model
from inference_service.settings import Settings
from model_build.importer import import_model


def run_import(
    onnx_path: Path, out: Path, name: str, version: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_build", "import", str(onnx_path), "--name", name, "--version", version,
         "--out", str(out), "--store", str(out.parent / f"{out.name}-store"),
         "--catalog", str(out.parent / f"{out.name}-catalog.json"), *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """scikit-learn pipelines exported with skl2onnx, with signatures unlike the built-in models'."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folder = tmp_path_factory.mktemp("exported")
    x, y = load_diabetes(return_X_y=True)
    ridge = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x, y)
    onx = to_onnx(ridge, initial_types=[("features", DoubleTensorType([None, 10]))], target_opset=17)
    (folder / "ridge.onnx").write_bytes(onx.SerializeToString())
    xi, yi = load_iris(return_X_y=True)
    xi = xi.astype(np.float32)
    iris = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(xi, yi)
    final = iris.steps[-1][1]
    for zipmap in (False, True):
        onx = to_onnx(iris, initial_types=[("measurements", FloatTensorType([None, 4]))], target_opset=17,
                      options={id(final): {"zipmap": zipmap}})  # fmt: skip
        (folder / f"iris-zipmap-{zipmap}.onnx").write_bytes(onx.SerializeToString())
    named = LogisticRegression(max_iter=500).fit(xi, np.array(["setosa", "versicolor", "virginica"])[yi])
    onx = to_onnx(named, initial_types=[("x", FloatTensorType([None, 4]))], target_opset=17,
                  options={id(named): {"zipmap": False}})  # fmt: skip
    (folder / "string-labels.onnx").write_bytes(onx.SerializeToString())
    onx = to_onnx(ridge, initial_types=[("features", DoubleTensorType([1, 10]))], target_opset=17)
    (folder / "fixed-batch.onnx").write_bytes(onx.SerializeToString())
    return {p.stem: p for p in folder.iterdir()}


def test_imported_pipelines_serve_through_the_triton_client(exported, tmp_path, serve, api_key) -> None:
    repo = tmp_path / "repo"
    for stem, name, version, extra in (
        ("ridge", "diabetes-ridge", "1", ()),
        (
            "iris-zipmap-False",
            "iris",
            "3",
            ("--labels", "setosa,versicolor,virginica", "--description", "Iris"),
        ),
    ):
        done = run_import(exported[stem], repo, name, version, *extra)
        assert done.returncode == 0, done.stderr
        assert f"imported {name}:{version}" in done.stdout
    ridge = ModelMetadata.read(repo / "diabetes-ridge/1/metadata.json")
    assert [(s.name, s.datatype, s.shape) for s in ridge.inputs] == [("features", "FP64", [-1, 10])]
    assert [(s.name, s.datatype, s.shape) for s in ridge.outputs] == [("variable", "FP64", [-1, 1])]
    assert (
        ridge.model_sha256
        == sha256_file(exported["ridge"])
        == sha256_file(repo / "diabetes-ridge/1/model.onnx")
    )
    assert ridge.details["producer"].startswith("skl2onnx")
    iris = ModelMetadata.read(repo / "iris/3/metadata.json")
    assert [(s.name, s.datatype, s.shape) for s in iris.outputs] == [
        ("label", "INT64", [-1]), ("probabilities", "FP32", [-1, 3])
    ]  # fmt: skip
    assert (
        iris.details["class_labels"] == ["setosa", "versicolor", "virginica"] and iris.description == "Iris"
    )

    from sklearn.datasets import load_diabetes, load_iris

    x = load_diabetes().data[:5]
    xi = load_iris().data[::30].astype(np.float32)
    auth = {"Authorization": f"Bearer {api_key}"}
    with serve(repo, "diabetes-ridge:1,iris:3") as server:
        client = triton.InferenceServerClient(url=server.url)
        try:
            meta = client.get_model_metadata("diabetes-ridge", headers=dict(auth))
            assert meta["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 10]}]
            for binary in (True, False):
                tensor = triton.InferInput("features", list(x.shape), "FP64")
                tensor.set_data_from_numpy(x, binary_data=binary)
                result = client.infer("diabetes-ridge", [tensor], headers=dict(auth))
                predicted = result.as_numpy("variable")
                assert predicted is not None and predicted.shape == (5, 1)
                # An independent reference: scikit-learn's own prediction of the same pipeline, refitted.
                from sklearn.linear_model import Ridge
                from sklearn.pipeline import make_pipeline
                from sklearn.preprocessing import StandardScaler

                reference = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(
                    *load_diabetes(return_X_y=True)
                )
                np.testing.assert_allclose(predicted[:, 0], reference.predict(x), rtol=1e-6)
            tensor = triton.InferInput("measurements", list(xi.shape), "FP32")
            tensor.set_data_from_numpy(xi)
            result = client.infer("iris", [tensor], model_version="3", headers=dict(auth))
            labels, probabilities = result.as_numpy("label"), result.as_numpy("probabilities")
            assert labels is not None and probabilities is not None
            assert labels.tolist() == load_iris().target[::30].tolist()
            np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
        finally:
            client.close()


def _opset_model(path: Path, *, opset: int, domain: str = "", op: str = "Relu") -> Path:
    node = helper.make_node(op, ["x"], ["y"], domain=domain)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    )  # fmt: skip
    imports = [helper.make_opsetid("", opset if not domain else 17)]
    if domain:
        imports.append(helper.make_opsetid(domain, opset))
    path.write_bytes(helper.make_model(graph, opset_imports=imports, ir_version=10).SerializeToString())
    return path


def _batch_coupled_model(path: Path) -> Path:
    """x - mean(x over the batch): valid ONNX, but a row's result depends on the other rows."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[0], keepdims=1),
        helper.make_node("Sub", ["x", "m"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def test_unsupported_signatures_get_one_line_each_and_write_nothing(exported, tmp_path) -> None:
    cases = [
        (exported["iris-zipmap-True"], ["output 'output_probability' is a seq(map(int64,tensor(float)))"]),
        (exported["string-labels"], ["output 'label' is tensor(string)"]),
        (exported["fixed-batch"], ["input 'features' has a fixed first dimension 1",
                                   "output 'variable' has a fixed first dimension 1"]),
        (_opset_model(tmp_path / "future.onnx", opset=99),
         ["opset 99 of domain 'ai.onnx' is newer than onnxruntime"]),
        (_opset_model(tmp_path / "custom.onnx", opset=1, domain="com.example", op="Frobnicate"),
         ["opset domain 'com.example' (version 1) is unknown to onnxruntime"]),
        (_batch_coupled_model(tmp_path / "coupled.onnx"),
         ["output 'y' for a row differs between that row alone"]),
    ]  # fmt: skip
    future_ir = onnx.load(str(exported["ridge"]))
    future_ir.ir_version = 99
    (tmp_path / "ir99.onnx").write_bytes(future_ir.SerializeToString())
    cases.append((tmp_path / "ir99.onnx", ["cannot load it: Unsupported model IR version: 99"]))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    cases.append((junk, ["not an ONNX model"]))
    cases.append((tmp_path / "missing.onnx", ["no such file"]))
    for path, expected in cases:
        done = run_import(path, tmp_path / "repo", "some-model", "1")
        assert done.returncode == 1, (path, done.stdout)
        lines = done.stderr.splitlines()
        assert len(lines) == len(expected), (path, lines)
        for line, phrase in zip(lines, expected, strict=True):
            assert line.startswith(f"model_build: error: {path}: "), line
            assert phrase in line, line
        assert not (tmp_path / "repo/some-model").exists()


def test_a_version_is_immutable_and_reimporting_the_same_model_is_a_no_op(exported, tmp_path) -> None:
    repo = tmp_path / "repo"
    assert run_import(exported["ridge"], repo, "m", "1").returncode == 0
    before = (repo / "m/1/metadata.json").read_bytes()
    again = run_import(exported["ridge"], repo, "m", "1")
    assert again.returncode == 0 and (repo / "m/1/metadata.json").read_bytes() == before
    other = run_import(exported["iris-zipmap-False"], repo, "m", "1")
    assert other.returncode == 1 and "already exists with other contents" in other.stderr
    assert sha256_file(repo / "m/1/model.onnx") == sha256_file(exported["ridge"])
    assert run_import(exported["iris-zipmap-False"], repo, "m", "1", "--force").returncode == 0
    assert sha256_file(repo / "m/1/model.onnx") == sha256_file(exported["iris-zipmap-False"])


def test_a_text_model_imports_with_its_tokenizer_and_embeds_like_the_original(
    model_repository, tmp_path
) -> None:
    source = model_repository / "minilm-embedding/1"
    third_party = tmp_path / "elsewhere"
    third_party.mkdir()
    shutil.copyfile(source / "model.onnx", third_party / "encoder.onnx")
    shutil.copyfile(source / "tokenizer.json", third_party / "tok.json")
    repo = tmp_path / "repo"
    import_model(third_party / "encoder.onnx", out=repo, name="my-embedder", version="4",
                 tokenizer=third_party / "tok.json")  # fmt: skip
    meta = orjson.loads((repo / "my-embedder/4/metadata.json").read_bytes())
    assert meta["kind"] == "text-embedding"
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]
    assert meta["tokenizer"]["sha256"] == sha256_file(third_party / "tok.json")
    assert meta["tokenizer"]["max_length"] == 256  # the tokenizer's own truncation length
    settings = Settings(model_repository=repo, auth_enabled=False)
    (imported,) = discover(repo, [("my-embedder", "4")])
    (original,) = discover(model_repository, [("minilm-embedding", "1")])
    texts = [b"a cat sits on the mat", b"stock markets fell"]
    got = load_model(imported, settings).run_rows(texts)
    want = load_model(original, settings).run_rows(texts)
    for (a,), (b,) in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_dynamic_dimensions_after_the_batch_are_fixed_with_shape(tmp_path) -> None:
    node = helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=1)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"]),
         helper.make_tensor_value_info("axes", TensorProto.INT64, [1])],  # as old exporters list it
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch", 1])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )  # fmt: skip
    path = tmp_path / "sum.onnx"
    path.write_bytes(
        helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
        ).SerializeToString()
    )
    repo = tmp_path / "repo"
    refused = run_import(path, repo, "summer", "1")
    assert refused.returncode == 1
    assert "input 'x' has the dynamic shape [-1, -1] beyond its batch dimension" in refused.stderr
    assert "--shape x=-1,..." in refused.stderr and not (repo / "summer").exists()
    misfit = run_import(path, repo, "summer", "1", "--shape", "x=5")
    assert misfit.returncode == 1 and "--shape x=5 does not fit the declared [-1, -1]" in misfit.stderr
    done = run_import(path, repo, "summer", "1", "--shape", "x=-1,4")
    assert done.returncode == 0, done.stderr
    meta = ModelMetadata.read(repo / "summer/1/metadata.json")
    assert meta.inputs[0].shape == [-1, 4] and meta.details["shapes_fixed_at_import"] == {"x": [-1, 4]}
    assert [s.name for s in meta.inputs] == ["x"]  # "axes" is an initializer, though the graph lists it
    (entry,) = discover(repo, [("summer", "1")])
    served = load_model(entry, Settings(model_repository=repo, auth_enabled=False))
    rows = [(np.arange(4, dtype=np.float32) + i,) for i in range(3)]
    results = served.run_rows(rows)
    assert [float(r[0][0]) for r in results] == [6.0, 10.0, 14.0]
