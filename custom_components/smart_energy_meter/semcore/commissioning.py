"""Fit the pair's loss model over a period known to be theft-free.

Per window, the mean power difference is modelled as

    ΔP = P_line - P_house = a + R·⟨I²⟩ + m·P_house

a: a constant draw between the meters (the node's own supply, a meter's zero error);
R: the service cable's loop resistance; m: the house meter's gain relative to the line meter.
The fit needs the load to vary during the period (several levels, ideally up to a few kW),
otherwise a, R and m cannot be told apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .linear_fit import FitError, least_squares

__all__ = ["BalanceSample", "CommissioningFit", "FitError", "fit_commissioning"]


@dataclass(frozen=True, slots=True)
class BalanceSample:
    """Window means of one balance window: line and house power (W) and line current² (A²)."""

    line_w: float
    house_w: float
    current_sq_a2: float


@dataclass(frozen=True, slots=True)
class CommissioningFit:
    """Result of a commissioning fit; standard errors alongside each parameter."""

    offset_w: float
    offset_se_w: float
    resistance_ohm: float
    resistance_se_ohm: float
    gain_mismatch: float  # m: house reads (1 + m) too low relative to the line meter
    gain_mismatch_se: float
    residual_w: float  # standard deviation of the per-window residuals
    windows: int
    resistance_fitted: bool
    gain_matched: bool


def fit_commissioning(
    samples: Sequence[BalanceSample],
    *,
    resistance_ohm: float | None = None,
    match_gain: bool = True,
) -> CommissioningFit:
    """Least-squares fit of the loss model.

    With `resistance_ohm` given (cable data), R is held at it and only a (and m) are fitted;
    otherwise R is fitted. Raises FitError when the samples cannot determine the unknowns.
    """
    if resistance_ohm is not None and resistance_ohm < 0:
        raise FitError(f"resistance must be >= 0, got {resistance_ohm}")
    fixed_r = resistance_ohm or 0.0
    rows: list[list[float]] = []
    targets: list[float] = []
    for s in samples:
        row = [1.0]
        if resistance_ohm is None:
            row.append(s.current_sq_a2)
        if match_gain:
            row.append(s.house_w)
        rows.append(row)
        targets.append(s.line_w - s.house_w - fixed_r * s.current_sq_a2)
    fit = least_squares(rows, targets)
    coef = list(fit.coefficients)
    err = list(fit.standard_errors)
    a, a_se = coef.pop(0), err.pop(0)
    if resistance_ohm is None:
        r, r_se = coef.pop(0), err.pop(0)
    else:
        r, r_se = resistance_ohm, 0.0
    m, m_se = (coef.pop(0), err.pop(0)) if match_gain else (0.0, 0.0)
    return CommissioningFit(
        offset_w=a,
        offset_se_w=a_se,
        resistance_ohm=r,
        resistance_se_ohm=r_se,
        gain_mismatch=m,
        gain_mismatch_se=m_se,
        residual_w=fit.residual_std,
        windows=fit.points,
        resistance_fitted=resistance_ohm is None,
        gain_matched=match_gain,
    )
