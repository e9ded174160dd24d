"""Fitting offset, cable resistance and gain mismatch over a theft-free period."""

from __future__ import annotations

import random

import pytest

from custom_components.smart_energy_meter.semcore.commissioning import (
    BalanceSample,
    FitError,
    fit_commissioning,
)

OFFSET_W = 1.2
RESISTANCE = 0.15
MISMATCH = 0.004  # house meter reads 0.4 % low relative to the line meter


def _samples(n: int = 300, noise_w: float = 0.5, seed: int = 3) -> list[BalanceSample]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        house = rng.uniform(50.0, 9000.0)
        amps = house / 230.0
        line = house + OFFSET_W + RESISTANCE * amps**2 + MISMATCH * house
        out.append(BalanceSample(line + rng.gauss(0, noise_w), house, amps**2))
    return out


def test_recovers_offset_resistance_and_gain() -> None:
    fit = fit_commissioning(_samples())
    assert fit.offset_w == pytest.approx(OFFSET_W, abs=4 * fit.offset_se_w)
    assert fit.resistance_ohm == pytest.approx(RESISTANCE, abs=4 * fit.resistance_se_ohm)
    assert fit.gain_mismatch == pytest.approx(MISMATCH, abs=4 * fit.gain_mismatch_se)
    assert fit.resistance_se_ohm < 0.01 * RESISTANCE
    assert fit.residual_w == pytest.approx(0.5, rel=0.2)
    assert fit.windows == 300
    assert fit.resistance_fitted
    assert fit.gain_matched


def test_known_resistance_is_held() -> None:
    fit = fit_commissioning(_samples(), resistance_ohm=RESISTANCE)
    assert fit.resistance_ohm == RESISTANCE
    assert fit.resistance_se_ohm == 0.0
    assert not fit.resistance_fitted
    assert fit.gain_mismatch == pytest.approx(MISMATCH, abs=1e-4)


def test_without_gain_matching_the_mismatch_is_not_fitted() -> None:
    samples = [BalanceSample(s.line_w - MISMATCH * s.house_w, s.house_w, s.current_sq_a2)
               for s in _samples(noise_w=0.0)]  # fmt: skip
    fit = fit_commissioning(samples, match_gain=False)
    assert fit.gain_mismatch == 0.0
    assert not fit.gain_matched
    assert fit.resistance_ohm == pytest.approx(RESISTANCE, rel=1e-6)


def test_a_constant_load_cannot_separate_the_unknowns() -> None:
    flat = [BalanceSample(1010.0, 1000.0, (1000 / 230) ** 2) for _ in range(50)]
    with pytest.raises(FitError, match="collinear"):
        fit_commissioning(flat)


def test_negative_resistance_is_refused() -> None:
    with pytest.raises(FitError, match="resistance"):
        fit_commissioning(_samples(), resistance_ohm=-0.1)
