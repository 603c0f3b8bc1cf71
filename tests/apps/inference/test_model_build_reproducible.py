"""`make models` writes the same model.onnx bytes on any x86-64 CPU: the committed catalog never changes.

Other CPUs are stood in for by what differs between them: the BLAS kernel OpenBLAS picks (OPENBLAS_CORETYPE),
BLAS and OpenMP thread counts, numpy's SIMD dispatch (NPY_DISABLE_CPU_FEATURES) and glibc's FMA/AVX2 variants
of libm (GLIBC_TUNABLES). The expected hashes are the committed catalog's, not a build of this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_build import catalog

# Each setting is one "other CPU". The first and second differ in every dimension named above.
NUMERIC_PATHS = {
    "sse3-kernel-1-thread": {
        "OPENBLAS_CORETYPE": "Prescott",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    },
    "haswell-kernel-2-threads-no-avx512-no-fma": {
        "OPENBLAS_CORETYPE": "Haswell",
        "OPENBLAS_NUM_THREADS": "2",
        "OMP_NUM_THREADS": "2",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
        "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F",
    },
    "skylakex-kernel-2-threads": {
        "OPENBLAS_CORETYPE": "SkylakeX",
        "OPENBLAS_NUM_THREADS": "2",
        "OMP_NUM_THREADS": "2",
    },
}

# scikit-learn's BLAS-based solver, as the v2 recipe used it before exact_fit: a control that the settings
# above really change the numeric path (if they did not, the test below would prove nothing).
BLAS_DEPENDENT_FIT = """
import hashlib, numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
d = load_breast_cancer()
x = StandardScaler().fit_transform(np.asarray(d.data, dtype=np.float32))
m = LogisticRegression(C=0.5, solver="lbfgs", max_iter=5000).fit(x, d.target)
print(hashlib.sha256(m.coef_.astype(np.float32).tobytes()).hexdigest())
"""


def env_for(path: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "OMP_", "NPY_", "GLIBC_"))}
    return {**base, **NUMERIC_PATHS[path]}


def test_the_numeric_paths_differ() -> None:
    digests = {
        path: subprocess.run(
            [sys.executable, "-c", BLAS_DEPENDENT_FIT],
            env=env_for(path),
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for path in NUMERIC_PATHS
    }
    assert len(set(digests.values())) > 1, digests


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(NUMERIC_PATHS))
def test_models_match_the_committed_catalog_on_every_numeric_path(tmp_path: Path, path: str) -> None:
    out = tmp_path / "models"
    subprocess.run(
        [sys.executable, "-m", "model_build", "--out", str(out), "--catalog", str(tmp_path / "catalog.json")],
        env=env_for(path), check=True, capture_output=True,
    )  # fmt: skip
    built = json.loads((tmp_path / "catalog.json").read_text())["models"]
    committed = json.loads(catalog.CATALOG_FILE.read_text())["models"]
    for name, versions in built.items():
        for version, entry in versions.items():
            assert entry["sha256"] == committed[name][version]["sha256"], f"{name}:{version} under {path}"
