"""The default tabular model: a gradient-boosted classifier on scikit-learn's bundled breast-cancer data.

Fixed seed and fixed stratified split, so the same library versions give the same model.onnx bytes. The
holdout accuracy and F1 go into metadata.json. Exported with skl2onnx, zipmap off: outputs `label` (int64
[batch]) and `probabilities` (float32 [batch, 2]) from one input `input` (float32 [batch, 30]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

NAME = "breast-cancer"
VERSION = "1"
SEED = 20240501
TEST_SIZE = 0.2
OPSET = 17
INPUT_NAME = "input"


def build(out_dir: Path) -> dict[str, Any]:
    """Trains, exports out_dir/model.onnx and returns the metadata fields (signature, metrics, provenance)."""
    import onnx
    import skl2onnx
    import sklearn
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    features = np.asarray(data.data, dtype=np.float32)
    target = np.asarray(data.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=TEST_SIZE, random_state=SEED, stratify=target
    )
    classifier = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=SEED)
    classifier.fit(x_train, y_train)

    onx = to_onnx(
        classifier,
        initial_types=[(INPUT_NAME, FloatTensorType([None, features.shape[1]]))],
        target_opset=OPSET,
        options={id(classifier): {"zipmap": False}},
    )
    onx.doc_string = f"{NAME} v{VERSION}: GradientBoostingClassifier on sklearn.datasets.load_breast_cancer"
    # skl2onnx collects the opsets in a set: their order follows the process's string hash seed. Sort them so
    # every process writes the same bytes.
    imports = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    for domain, version in imports:
        onx.opset_import.add(domain=domain, version=version)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "model.onnx"
    model_path.write_bytes(onx.SerializeToString(deterministic=True))
    onnx.checker.check_model(str(model_path), full_check=True)

    # Metrics from the exported graph itself, so they describe what is served.
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    labels, _ = session.run(None, {INPUT_NAME: x_test})
    sk_labels = classifier.predict(x_test)
    agreement = float(np.mean(np.asarray(labels) == sk_labels))
    return {
        "kind": "tensor",
        "description": "Breast cancer diagnosis (0 = malignant, 1 = benign) from 30 numeric cell features.",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, int(features.shape[1])]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        ],
        "allow_non_finite": False,
        "details": {
            "dataset": "sklearn.datasets.load_breast_cancer",
            "estimator": "GradientBoostingClassifier(n_estimators=100, max_depth=3)",
            "seed": SEED,
            "test_size": TEST_SIZE,
            "train_rows": len(x_train),
            "test_rows": len(x_test),
            "holdout_accuracy": round(float(accuracy_score(y_test, labels)), 6),
            "holdout_f1": round(float(f1_score(y_test, labels)), 6),
            "onnx_sklearn_agreement": round(agreement, 6),
            "feature_names": [str(n) for n in data.feature_names],
            "class_labels": [str(n) for n in data.target_names],
            "opset": OPSET,
            "library_versions": {
                "scikit-learn": sklearn.__version__,
                "skl2onnx": skl2onnx.__version__,
                "onnx": onnx.__version__,
            },
        },
    }
