"""The tabular models: classifiers on scikit-learn's bundled breast-cancer data, one recipe per version.

- version 1: a gradient-boosted tree ensemble on the raw features;
- version 2: standardized features (StandardScaler) into an L2-regularized logistic regression.

Both train on the same fixed stratified split with a fixed seed. Version 1's trees come from comparisons and
sums in a fixed order; version 2's parameters come from exact_fit.py (correctly rounded arithmetic, no BLAS),
because scikit-learn's BLAS-based solvers give other bits on other CPUs. So the same library versions give the
same model.onnx bytes on any machine, which the committed catalog (the model sources' trust anchor) relies
on, and the holdout metrics (accuracy, F1, ROC AUC) in metadata.json compare the two versions on the same
rows. Both are exported with skl2onnx, zipmap off, with one signature: input `input` (float32 [batch, 30]),
outputs `label` (int64 [batch]) and `probabilities` (float32 [batch, 2]). The same signature is what lets
version 2 run as a canary next to version 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_build import exact_fit

NAME = "breast-cancer"
SEED = 20240501
TEST_SIZE = 0.2
OPSET = 17
INPUT_NAME = "input"


@dataclass(frozen=True, kw_only=True)
class Variant:
    version: str
    estimator: str  # what metadata calls it
    summary: str  # what the ONNX doc string calls it
    make: Callable[[], Any]  # a fresh, unfitted scikit-learn estimator
    # a Pipeline(StandardScaler, LogisticRegression) whose parameters exact_fit replaces (see _fit_exactly)
    exact: bool = False


def _gradient_boosting() -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=SEED)


def _scaled_logistic_regression() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("scale", StandardScaler()),
            # Solved to convergence (the default lbfgs tolerance stops 20% away from the optimum on these
            # correlated features), as the independent check of exact_fit's parameters that replace these.
            ("classify", LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-8, max_iter=100)),
        ]
    )


VARIANTS = {
    "1": Variant(
        version="1",
        estimator="GradientBoostingClassifier(n_estimators=100, max_depth=3)",
        summary="GradientBoostingClassifier",
        make=_gradient_boosting,
    ),
    "2": Variant(
        version="2",
        estimator="Pipeline(StandardScaler(), LogisticRegression(C=0.5)), fitted by model_build.exact_fit",
        summary="StandardScaler + LogisticRegression",
        make=_scaled_logistic_regression,
        exact=True,
    ),
}


def _fit_exactly(pipeline: Any, x_train: np.ndarray, y_train: np.ndarray) -> None:
    """Replaces the fitted scaler's and classifier's parameters with exact_fit's for the same objective.

    scikit-learn's own fit (already done) is the independent check: its solution must predict the same
    probabilities to within its solver's tolerance, or this build stops."""
    scaler, regression = pipeline.named_steps["scale"], pipeline.named_steps["classify"]
    rows = [[float(v) for v in r] for r in x_train]
    scaling = exact_fit.standardize(rows)
    fit = exact_fit.logistic_regression(
        [scaling.apply(r) for r in rows], [int(v) for v in y_train], c=float(regression.C)
    )
    sklearn_probabilities = pipeline.predict_proba(x_train)[:, 1]
    scaler.mean_, scaler.scale_, scaler.var_ = (
        np.array(v) for v in (scaling.mean, scaling.scale, scaling.var)
    )
    regression.coef_ = np.array([fit.coef])
    regression.intercept_ = np.array([fit.intercept])
    gap = float(np.max(np.abs(pipeline.predict_proba(x_train)[:, 1] - sklearn_probabilities)))
    if gap > 1e-6:
        raise RuntimeError(
            f"exact_fit disagrees with scikit-learn's fit: probabilities differ by up to {gap:.2g}"
        )


def _build(variant: Variant, out_dir: Path) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort
    import skl2onnx
    import sklearn
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    features = np.asarray(data.data, dtype=np.float32)
    target = np.asarray(data.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=TEST_SIZE, random_state=SEED, stratify=target
    )
    classifier = variant.make()
    classifier.fit(x_train, y_train)
    if variant.exact:
        _fit_exactly(classifier, x_train, y_train)
    final_step = classifier.steps[-1][1] if hasattr(classifier, "steps") else classifier

    onx = to_onnx(
        classifier,
        initial_types=[(INPUT_NAME, FloatTensorType([None, features.shape[1]]))],
        target_opset=OPSET,
        options={id(final_step): {"zipmap": False}},
    )
    onx.doc_string = f"{NAME} v{variant.version}: {variant.summary} on sklearn.datasets.load_breast_cancer"
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
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {INPUT_NAME: x_test})
    sk_labels = classifier.predict(x_test)
    agreement = float(np.mean(np.asarray(labels) == sk_labels))
    details: dict[str, Any] = {
        "dataset": "sklearn.datasets.load_breast_cancer",
        "estimator": variant.estimator,
        "seed": SEED,
        "test_size": TEST_SIZE,
        "train_rows": len(x_train),
        "test_rows": len(x_test),
        "holdout_accuracy": round(float(accuracy_score(y_test, labels)), 6),
        "holdout_f1": round(float(f1_score(y_test, labels)), 6),
        "onnx_sklearn_agreement": round(agreement, 6),
        "feature_names": [str(n) for n in data.feature_names],
        "class_labels": [str(n) for n in data.target_names],
        "holdout_roc_auc": round(float(roc_auc_score(y_test, np.asarray(probabilities)[:, 1])), 6),
        "opset": OPSET,
        "library_versions": {
            "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
            "onnx": onnx.__version__,
        },
    }
    return {
        "kind": "tensor",
        "description": "Breast cancer diagnosis (0 = malignant, 1 = benign) from 30 numeric cell features.",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, int(features.shape[1])]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        ],
        "allow_non_finite": False,
        "details": details,
    }


def build(out_dir: Path) -> dict[str, Any]:
    """Version 1: trains, exports out_dir/model.onnx and returns the metadata fields."""
    return _build(VARIANTS["1"], out_dir)


def build_v2(out_dir: Path) -> dict[str, Any]:
    """Version 2: trains, exports out_dir/model.onnx and returns the metadata fields."""
    return _build(VARIANTS["2"], out_dir)
