"""Standardization and L2-regularized logistic regression whose parameters are the same bits on every CPU.

Why not scikit-learn's solvers: they run on BLAS, and OpenBLAS picks a kernel per CPU (Haswell, SkylakeX,
...) whose sums round differently. On this data (30 strongly correlated features) the optimum is flat enough
that those last-bit differences move the coefficients by up to 1e-5 relative, which survives the float32
export: one commit built four different `model.onnx` files under four OpenBLAS kernels. Rounding the
parameters to a coarser grid would only make a mismatch rarer, never impossible.

So the fit uses only operations IEEE 754 defines exactly: `+ - * /` and `sqrt` on Python floats, and sums
through `math.fsum`, which is correctly rounded whatever the order of its terms. `exp` comes from a fixed
polynomial evaluated with those operations (libm's `exp` has CPU-specific variants). The same inputs
therefore give the same parameters on any machine. It is small: Newton's method on about 450 rows and 31
parameters.

The caller checks the result against scikit-learn's own fit of the same objective (see tabular.py), so this
solver is verified by an independent implementation rather than trusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two so that k * ln2 is exact for the k that occur here
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_TAYLOR_TERMS = 24  # |r| <= ln2 / 2: the 24th term is far below one ulp


def exp(x: float) -> float:
    """e**x from +, -, *, / and ldexp alone (so the same bits everywhere); x outside +-700 is clamped."""
    x = max(-700.0, min(700.0, x))
    k = round(x * _INV_LN2)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    term, total = 1.0, 1.0
    for n in range(1, _TAYLOR_TERMS):
        term = term * r / n
        total += term
    return math.ldexp(total, k)


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + exp(-z))
    e = exp(z)
    return e / (1.0 + e)


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class Standardization:
    mean: tuple[float, ...]
    scale: tuple[float, ...]  # population standard deviation (ddof 0), 1.0 for a constant column

    @property
    def var(self) -> tuple[float, ...]:
        return tuple(s * s for s in self.scale)

    def apply(self, row: Sequence[float]) -> list[float]:
        return [(v - m) / s for v, m, s in zip(row, self.mean, self.scale, strict=True)]


def standardize(rows: Sequence[Sequence[float]]) -> Standardization:
    n = len(rows)
    columns = list(zip(*rows, strict=True))
    mean = tuple(math.fsum(c) / n for c in columns)
    scale = []
    for c, m in zip(columns, mean, strict=True):
        sd = math.sqrt(math.fsum((v - m) ** 2 for v in c) / n)
        scale.append(sd if sd > 0 else 1.0)
    return Standardization(mean=mean, scale=tuple(scale))


@dataclass(frozen=True)
class LogisticFit:
    coef: tuple[float, ...]
    intercept: float
    iterations: int


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Cholesky solve of a symmetric positive definite system (the Hessian), in fixed order."""
    n = len(rhs)
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            s = matrix[i][j] - math.fsum(low[i][k] * low[j][k] for k in range(j))
            low[i][j] = math.sqrt(s) if i == j else s / low[j][j]
    y = [0.0] * n
    for i in range(n):
        y[i] = (rhs[i] - math.fsum(low[i][k] * y[k] for k in range(i))) / low[i][i]
    x = [0.0] * n
    for i in reversed(range(n)):
        x[i] = (y[i] - math.fsum(low[k][i] * x[k] for k in range(i + 1, n))) / low[i][i]
    return x


def logistic_regression(
    rows: Sequence[Sequence[float]], labels: Sequence[int], *, c: float, max_iter: int = 100
) -> LogisticFit:
    """Minimizes sum(log-loss) + ||coef||^2 / (2c) (scikit-learn's objective for penalty='l2', C=c; the
    intercept is not penalized) with Newton's method and a line search on the directional derivative."""
    x = [[*r, 1.0] for r in rows]  # the last parameter is the intercept
    dim = len(x[0])
    w = [0.0] * dim

    def gradient(w: list[float]) -> list[float]:
        residual = [sigmoid(dot(xi, w)) - yi for xi, yi in zip(x, labels, strict=True)]
        return [
            math.fsum(xi[j] * ri for xi, ri in zip(x, residual, strict=True))
            + (w[j] / c if j < dim - 1 else 0.0)
            for j in range(dim)
        ]

    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (reported)
        p = [sigmoid(dot(xi, w)) for xi in x]
        g = gradient(w)
        weights = [pi * (1.0 - pi) for pi in p]
        hessian = [[0.0] * dim for _ in range(dim)]
        for i in range(dim):
            for j in range(i + 1):
                h = math.fsum(xr[i] * xr[j] * wr for xr, wr in zip(x, weights, strict=True))
                if i == j and i < dim - 1:
                    h += 1.0 / c
                hessian[i][j] = hessian[j][i] = h
        step = _solve(hessian, [-gi for gi in g])
        # The objective is convex, so its derivative along `step` increases; halve until it is not positive
        # at the new point, which guarantees the objective went down.
        t = 1.0
        while True:
            candidate = [wi + t * si for wi, si in zip(w, step, strict=True)]
            if dot(step, gradient(candidate)) <= 0.0 or t < 1e-10:
                break
            t /= 2.0
        converged = all(abs(a - b) <= 1e-14 * max(1.0, abs(a)) for a, b in zip(candidate, w, strict=True))
        w = candidate
        if converged:
            break
    return LogisticFit(coef=tuple(w[:-1]), intercept=w[-1], iterations=iterations)
