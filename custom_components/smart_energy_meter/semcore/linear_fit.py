"""Ordinary least squares for the few unknowns of a commissioning fit (no numpy in the core)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


class FitError(ValueError):
    """The data cannot determine the unknowns (too few points, or no spread in a regressor)."""


@dataclass(frozen=True, slots=True)
class LinearFit:
    """Solution of y ≈ X·β: coefficients, their standard errors, residual standard deviation."""

    coefficients: tuple[float, ...]
    standard_errors: tuple[float, ...]
    residual_std: float
    points: int


def least_squares(rows: Sequence[Sequence[float]], targets: Sequence[float]) -> LinearFit:
    """Fit β minimising Σ(y - x·β)² through the normal equations.

    Raises FitError when there are not more points than unknowns or when the columns are
    (numerically) collinear, e.g. a commissioning period with a single load level cannot tell
    a cable resistance from a constant offset.
    """
    if len(rows) != len(targets):
        raise FitError("rows and targets differ in length")
    if not rows:
        raise FitError("no data points")
    k = len(rows[0])
    n = len(rows)
    if k == 0 or any(len(row) != k for row in rows):
        raise FitError("rows must all have the same, non-zero number of columns")
    if n <= k:
        raise FitError(f"{n} points cannot determine {k} unknowns with a residual")
    if not all(math.isfinite(v) for row in rows for v in row) or not all(
        math.isfinite(y) for y in targets
    ):
        raise FitError("non-finite value in the data")

    # Columns are scaled to unit norm first so that I² (hundreds of A²) and a constant (1)
    # do not make the normal matrix ill-conditioned.
    scale = [math.sqrt(sum(row[j] ** 2 for row in rows)) for j in range(k)]
    if any(s == 0 for s in scale):
        raise FitError("a regressor is zero for every point")
    xs = [[row[j] / scale[j] for j in range(k)] for row in rows]
    normal = [[sum(x[i] * x[j] for x in xs) for j in range(k)] for i in range(k)]
    rhs = [sum(x[i] * y for x, y in zip(xs, targets, strict=True)) for i in range(k)]
    inverse = _invert(normal)
    beta_scaled = [sum(inverse[i][j] * rhs[j] for j in range(k)) for i in range(k)]

    residuals = [
        y - sum(b * xv for b, xv in zip(beta_scaled, x, strict=True))
        for x, y in zip(xs, targets, strict=True)
    ]
    variance = sum(r * r for r in residuals) / (n - k)
    coefficients = tuple(beta_scaled[j] / scale[j] for j in range(k))
    errors = tuple(math.sqrt(max(variance * inverse[j][j], 0.0)) / scale[j] for j in range(k))
    return LinearFit(coefficients, errors, math.sqrt(variance), n)


def _invert(matrix: list[list[float]]) -> list[list[float]]:
    """Gauss-Jordan inverse with partial pivoting of a small symmetric matrix."""
    k = len(matrix)
    aug = [[*row, *(1.0 if i == j else 0.0 for j in range(k))] for i, row in enumerate(matrix)]
    for col in range(k):
        pivot = max(range(col, k), key=lambda r: abs(aug[r][col]))
        # Unit-norm columns put the diagonal at 1; a pivot this small means collinear columns.
        if abs(aug[pivot][col]) < 1e-9:
            raise FitError("the regressors are collinear: vary the load during commissioning")
        aug[col], aug[pivot] = aug[pivot], aug[col]
        p = aug[col][col]
        aug[col] = [v / p for v in aug[col]]
        for r in range(k):
            if r != col:
                f = aug[r][col]
                aug[r] = [a - f * b for a, b in zip(aug[r], aug[col], strict=True)]
    return [row[k:] for row in aug]
