"""Window thresholds: the paper's fixed share, and the uncertainty budget."""

from __future__ import annotations

import math

import pytest

from custom_components.smart_energy_meter.semcore.uncertainty import (
    ThresholdMode,
    UncertaintyModel,
    WindowQuantities,
    balance_sigma_wh,
    window_threshold,
)


def _q(line_wh: float, house_wh: float | None = None, **kw: float) -> WindowQuantities:
    base: dict[str, float] = {
        "duration_s": 20.0,
        "cable_loss_wh": 0.0,
        "line_samples": 20,
        "house_samples": 20,
    }
    base.update(kw)
    return WindowQuantities(
        duration_s=base["duration_s"],
        line_wh=line_wh,
        house_wh=line_wh if house_wh is None else house_wh,
        cable_loss_wh=base["cable_loss_wh"],
        line_samples=int(base["line_samples"]),
        house_samples=int(base["house_samples"]),
        edge_step_w=base.get("edge_step_w", 0.0),
        steps_w=base.get("steps_w", 0.0),
        read_interval_s=base.get("read_interval_s", 0.0),
        from_counters=bool(base.get("from_counters", 0.0)),
    )


ONLY_GAIN = UncertaintyModel(meter_offset_w=0.0, reading_noise_pct=0.0, floor_w=0.0)


def test_fixed_mode_is_the_papers_two_percent() -> None:
    model = UncertaintyModel(mode=ThresholdMode.FIXED)
    t = window_threshold(model, _q(100.0))
    assert t.trigger_wh == pytest.approx(2.0)
    assert t.clear_wh == pytest.approx(1.0)
    assert t.level_wh == pytest.approx(2.0)


def test_floor_dominates_at_low_load() -> None:
    model = UncertaintyModel(floor_w=3.0)
    t = window_threshold(model, _q(10.0 * 20 / 3600))  # 10 W for 20 s
    assert t.trigger_wh == pytest.approx(3.0 * 20 / 3600)
    assert t.floor_wh == t.trigger_wh


def test_gain_term_for_two_independent_meters() -> None:
    # Each meter within ±1 %, uniform: sigma = 1 %/sqrt(3) each, combined over both.
    sigma = balance_sigma_wh(ONLY_GAIN, _q(100.0))
    assert sigma == pytest.approx(math.sqrt(2) * 1.0 / math.sqrt(3))
    assert window_threshold(ONLY_GAIN, _q(100.0)).trigger_wh == pytest.approx(3 * sigma)


def test_worst_case_meter_pair_stays_below_the_trigger() -> None:
    # Line +1 %, house -1 % (both at their bound): 2 % apparent theft at any load.
    model = UncertaintyModel()
    for watts in (10.0, 100.0, 1000.0, 10_000.0):
        true_wh = watts * 20 / 3600
        line, house = true_wh * 1.01, true_wh * 0.99
        assert line - house < window_threshold(model, _q(line, house)).trigger_wh


def test_matched_gain_replaces_the_per_meter_terms() -> None:
    model = UncertaintyModel(
        gain_match_pct=0.2, meter_offset_w=0.0, reading_noise_pct=0.0, floor_w=0.0
    )
    assert balance_sigma_wh(model, _q(100.0)) == pytest.approx(0.2)


def test_cable_loss_and_counter_quantisation_add_in_quadrature() -> None:
    base = balance_sigma_wh(ONLY_GAIN, _q(100.0))
    with_cable = balance_sigma_wh(ONLY_GAIN, _q(100.0, cable_loss_wh=4.0))
    assert with_cable**2 - base**2 == pytest.approx((0.15 * 4.0) ** 2)
    counters = balance_sigma_wh(ONLY_GAIN, _q(100.0, from_counters=1.0))
    assert counters**2 - base**2 == pytest.approx(1 / 3)


def test_noise_averages_over_readings() -> None:
    model = UncertaintyModel(meter_gain_pct=0.0, meter_offset_w=0.0, reading_noise_pct=1.0)
    one = balance_sigma_wh(model, _q(100.0, line_samples=1, house_samples=1))
    many = balance_sigma_wh(model, _q(100.0, line_samples=100, house_samples=100))
    assert one / many == pytest.approx(10.0)
    # No readings counted (degenerate window) is treated as one.
    assert balance_sigma_wh(model, _q(100.0, line_samples=0, house_samples=0)) == one


def test_timing_widens_the_trigger_and_narrows_the_clear_band() -> None:
    model = UncertaintyModel()
    quiet = window_threshold(model, _q(50.0))
    stepped = window_threshold(
        model, _q(50.0, edge_step_w=3600.0, steps_w=1800.0, read_interval_s=1.0)
    )
    # 1 s skew x 3600 W + 1 s interval x 1800 W = 1.5 Wh.
    assert stepped.timing_wh == pytest.approx(1.5)
    assert stepped.trigger_wh == pytest.approx(quiet.trigger_wh + 1.5)
    assert stepped.clear_wh == pytest.approx(quiet.clear_wh - 1.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"meter_gain_pct": -1.0},
        {"z": math.nan},
        {"floor_w": math.inf},
        {"gain_match_pct": -0.1},
        {"gain_match_pct": math.nan},
        {"clear_ratio": 0.0},
        {"clear_ratio": 1.0},
    ],
)
def test_model_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        UncertaintyModel(**kwargs)  # type: ignore[arg-type]
