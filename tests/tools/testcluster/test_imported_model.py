"""Own models reach production (issue 25 point 1), end to end: a third-party model exported here with skl2onnx
is imported (`python -m model_build import`: catalog entry, committed folder, model repository), named by a
service in a copy of overlays/, synthesized, passes the gate and the real apiserver, boots in the boot check
and answers tritonclient with its class names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from imagebuild import pin
from mlplatform.schema.catalog import CATALOG_FILE
from mlplatform.synth import synthesize
from testcluster import boot, images, sandbox
from testcluster.apply import Manifest, expected_warnings, load_folder
from testcluster.kubeapi import Kube
from testcluster.run import check_environment

from .conftest import REPO, gate_findings

LABELS = ["setosa", "versicolor", "virginica"]
MODEL = "iris-classifier"


def _export(folder: Path) -> Path:
    """A scikit-learn pipeline trained on iris, exported by skl2onnx as a third party would."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x.astype(np.float32), y)
    onx = to_onnx(
        pipe,
        initial_types=[("measurements", FloatTensorType([None, 4]))],
        target_opset=17,
        options={id(pipe.steps[-1][1]): {"zipmap": False}},
    )
    path = folder / "iris.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


def _model_build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_build", *args], capture_output=True, text=True, check=False, cwd=REPO
    )


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A repository root with overlays/, the Kyverno policies and the catalog copied, the model imported
    into it (its catalog, its committed folder, a copy of build/models), and the inference service naming it
    in platform.yaml."""
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(REPO / "overlays", root / "overlays")
    shutil.copytree(REPO / "policies" / "kyverno", root / "policies" / "kyverno")  # dist/cluster-policies/
    shutil.copy2(REPO / "policies" / "exceptions.yaml", root / "policies" / "exceptions.yaml")
    catalog = root / CATALOG_FILE
    catalog.parent.mkdir(parents=True)
    shutil.copy2(REPO / CATALOG_FILE, catalog)
    models = root / "build" / "models"
    shutil.copytree(REPO / "build" / "models", models)
    store = root / "apps" / "inference" / "models"
    onnx_path = _export(root)
    done = _model_build(
        "import", str(onnx_path), "--name", MODEL, "--version", "1", "--labels", ",".join(LABELS),
        "--out", str(models), "--store", str(store), "--catalog", str(catalog),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{MODEL}:1 recorded in the catalog {catalog}" in done.stdout
    platform = yaml.safe_load((root / "overlays" / "platform.yaml").read_text())
    platform["services"]["inference"]["models"].append({"name": MODEL, "version": "1"})
    (root / "overlays" / "platform.yaml").write_text(yaml.safe_dump(platform, sort_keys=False))
    yield {"root": root, "catalog": catalog, "models": models, "store": store, "onnx": onnx_path}


def test_import_records_the_model_in_the_catalog_and_a_fresh_build_reproduces_it(
    imported: dict[str, Path], tmp_path: Path
) -> None:
    entry = json.loads(imported["catalog"].read_text())["models"][MODEL]["1"]
    assert entry["source"] == {"kind": "image", "imported": True}
    folder = imported["store"] / MODEL / "1"
    assert (folder / "model.onnx").read_bytes() == imported["onnx"].read_bytes()
    assert json.loads((folder / "metadata.json").read_text())["details"]["class_labels"] == LABELS
    # a fresh clone: `make models` copies the committed folder, byte for byte, and leaves the catalog as it is
    before = imported["catalog"].read_bytes()
    fresh = tmp_path / "models"
    done = _model_build(
        "--out", str(fresh), "--catalog", str(imported["catalog"]), "--store", str(imported["store"]),
        "--only", MODEL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{MODEL}:1 (imported) copied" in done.stdout
    assert imported["catalog"].read_bytes() == before
    copied = fresh / MODEL / "1"
    assert {p.name: p.read_bytes() for p in copied.iterdir()} == {
        p.name: p.read_bytes() for p in folder.iterdir()
    }
    # a swapped file is refused: the catalog is the trust anchor
    store = tmp_path / "store"
    shutil.copytree(imported["store"], store)
    (store / MODEL / "1" / "model.onnx").write_bytes(b"not the imported model")
    refused = _model_build(
        "--out", str(tmp_path / "other"), "--catalog", str(imported["catalog"]), "--store", str(store),
        "--only", MODEL,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "the committed file is not the model that was imported" in refused.stderr


def test_importing_over_a_built_version_is_refused(imported: dict[str, Path], tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    shutil.copy2(imported["catalog"], catalog)
    done = _model_build(
        "import", str(imported["onnx"]), "--name", "breast-cancer", "--version", "1",
        "--out", str(tmp_path / "m"), "--store", str(tmp_path / "s"), "--catalog", str(catalog),
    )  # fmt: skip
    assert done.returncode == 1 and "breast-cancer:1 is already in the catalog (source image" in done.stderr
    assert not (tmp_path / "s").exists()


@pytest.fixture(scope="module")
def synthesized(imported: dict[str, Path]) -> Path:
    out = imported["root"] / "dist"
    synthesize(imported["root"], out=out)
    return out


def test_the_service_names_the_model_and_the_gate_passes(
    imported: dict[str, Path], synthesized: Path, tmp_path: Path
) -> None:
    config = yaml.safe_load((synthesized / "dev" / "configmap-inference-config.yaml").read_text())
    assert f"{MODEL}:1" in config["data"]["INFERENCE_MODELS"].split(",")
    found = gate_findings(synthesized, imported["root"] / "overlays", ["dev", "stage", "prod"], tmp_path)
    assert [f.describe() for f in found] == []


def _ask_with_tritonclient(api_key: str) -> str:
    """A script for the pod's network: tritonclient's V2 call, its classification, and a V1 predict."""
    return f"""
import json, urllib.request
import numpy as np
import tritonclient.http as t
headers = {{"Authorization": "Bearer {api_key}"}}
client = t.InferenceServerClient("127.0.0.1:8080")
meta = client.get_model_metadata("{MODEL}", headers=headers)
x = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
inp = t.InferInput("measurements", list(x.shape), "FP32")
inp.set_data_from_numpy(x)
outs = [t.InferRequestedOutput("label"), t.InferRequestedOutput("probabilities", class_count=1)]
r = client.infer("{MODEL}", [inp], outputs=outs, headers=headers)
body = json.dumps({{"instances": x.tolist()}}).encode()
req = urllib.request.Request("http://127.0.0.1:8080/v1/models/{MODEL}:predict", data=body,
    headers={{**headers, "Content-Type": "application/json"}})
v1 = json.load(urllib.request.urlopen(req, timeout=10))
print(json.dumps({{
    "inputs": meta["inputs"],
    "label": r.as_numpy("label").tolist(),
    "top": [b.decode() for b in r.as_numpy("probabilities").ravel()],
    "v1": v1["predictions"],
}}))
"""


def test_the_imported_model_boots_and_answers_tritonclient_with_its_labels(
    synthesized: Path, imported: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The boot check runs the Deployment as its manifest says, with the image's /models holding the model
    repository the import wrote; while it is ready, tritonclient asks it from inside the pod's network."""
    # the images as `make image` builds them from this repository's models (the imported one included), and
    # dev pinned to them, so the boot check runs the image that would ship
    root = imported["root"]
    built = root / "build" / "images"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "imagebuild",
            "build",
            "--out",
            str(built),
            "--models",
            str(imported["models"]),
        ],
        check=True,
        timeout=1200,
    )
    list(pin.pin(root / "overlays" / "dev.yaml", built))
    synthesize(root, out=synthesized)
    monkeypatch.setattr(images, "IMAGES", built)
    monkeypatch.setattr(images, "UNPACKED", built / ".unpacked")
    answers: list[dict[str, Any]] = []

    def ask(dep: Manifest, objects: boot.Objects, net: sandbox.Network) -> str | None:
        key = objects.secret("inference-api-keys", dep.label)["api-keys"].split()[0]
        done = net.run([sys.executable, "-c", _ask_with_tritonclient(key)], timeout=60)
        if done.returncode != 0:
            return f"tritonclient failed: {done.stderr[-2000:]}"
        answers.append(json.loads(done.stdout))
        return None

    booted, failures = boot.boot_environment(load_folder(synthesized / "dev"), while_ready=ask)
    assert failures == []
    assert "Deployment inference" in booted
    (answer,) = answers
    assert answer["inputs"] == [{"name": "measurements", "datatype": "FP32", "shape": [-1, 4]}]
    assert answer["label"] == [0, 2]  # V2 keeps the graph's class index
    assert [t.split(":")[1:] for t in answer["top"]] == [["0", "setosa"], ["2", "virginica"]]
    assert [p["label"] for p in answer["v1"]] == ["setosa", "virginica"]  # V1: the class name


def test_the_real_apiserver_admits_the_environment_at_maximum_scale(
    kube: Kube, synthesized: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "cluster" / "dev"
    shutil.copytree(synthesized / "dev", folder)
    namespace = "mlplatform-dev"
    for file in folder.glob("*.yaml"):
        file.write_text(file.read_text().replace(namespace, "imported-model-dev"))
    result = check_environment(kube, folder, expected=expected_warnings(), boot_check=False)
    assert result.failures == []
