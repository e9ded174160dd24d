"""Least squares used by commissioning."""

from __future__ import annotations

import math
import random

import pytest

from custom_components.smart_energy_meter.semcore.linear_fit import FitError, least_squares


def test_exact_data_is_recovered() -> None:
    xs = [0.0, 1.0, 2.0, 5.0, 9.0]
    rows = [[1.0, x, x * x] for x in xs]
    fit = least_squares(rows, [3.0 - 2.0 * x + 0.5 * x * x for x in xs])
    assert fit.coefficients == pytest.approx((3.0, -2.0, 0.5), abs=1e-9)
    assert fit.residual_std == pytest.approx(0.0, abs=1e-9)
    assert fit.points == 5


def test_noisy_fit_within_its_standard_errors() -> None:
    rng = random.Random(7)
    rows, ys = [], []
    for _ in range(400):
        i2 = rng.uniform(0.0, 2500.0)  # A² up to 50 A
        rows.append([1.0, i2])
        ys.append(1.5 + 0.12 * i2 + rng.gauss(0.0, 2.0))
    fit = least_squares(rows, ys)
    (a, r), (a_se, r_se) = fit.coefficients, fit.standard_errors
    assert abs(a - 1.5) < 4 * a_se
    assert abs(r - 0.12) < 4 * r_se
    assert 0 < r_se < 1e-3
    assert fit.residual_std == pytest.approx(2.0, rel=0.15)


@pytest.mark.parametrize(
    ("rows", "targets", "message"),
    [
        ([[1.0]], [1.0, 2.0], "differ"),
        ([], [], "no data"),
        ([[1.0, 2.0], [1.0]], [1.0, 2.0], "same"),
        ([[], []], [1.0, 2.0], "same"),
        ([[1.0, 1.0], [1.0, 2.0]], [1.0, 2.0], "cannot determine"),
        ([[1.0], [math.nan], [1.0]], [1.0, 2.0, 3.0], "non-finite"),
        ([[1.0], [1.0], [1.0]], [1.0, math.inf, 3.0], "non-finite"),
        ([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], [1.0, 2.0, 3.0], "zero for every"),
        ([[1.0, 2.0], [1.0, 2.0], [2.0, 4.0]], [1.0, 2.0, 3.0], "collinear"),
    ],
)
def test_underdetermined_or_bad_data_is_refused(
    rows: list[list[float]], targets: list[float], message: str
) -> None:
    with pytest.raises(FitError, match=message):
        least_squares(rows, targets)


def test_pivoting_handles_a_leading_zero() -> None:
    # The first column is zero in the first row: Gauss-Jordan must swap rows.
    rows = [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [2.0, 1.0]]
    fit = least_squares(rows, [2.0 * a + 3.0 * b for a, b in rows])
    assert fit.coefficients == pytest.approx((2.0, 3.0))
