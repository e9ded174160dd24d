"""Windowed integration of one meter, and the timing bounds from the line power history."""

from __future__ import annotations

import pytest

from custom_components.smart_energy_meter.semcore.windows import (
    HeldReading,
    MeterIntegrator,
    PowerHistory,
    WindowTotals,
    mismatch_pct,
)


def _r(ts: float, watts: float, energy: float | None = None, amps: float = 1.0) -> HeldReading:
    return HeldReading(ts, watts, amps, energy)


def test_constant_power_fills_windows_exactly() -> None:
    m = MeterIntegrator(window_s=10.0, max_hold_s=5.0)
    for k in range(31):
        m.add(_r(100.0 + k, 360.0, amps=2.0))
    for w in (10, 11, 12):
        totals = m.pop(w)
        assert totals.covered_s == pytest.approx(10.0)
        assert totals.energy_wh == pytest.approx(1.0)  # 360 W x 10 s
        assert totals.current_sq_as == pytest.approx(40.0)
        assert totals.samples == 10


def test_an_interval_is_split_at_the_window_edge() -> None:
    m = MeterIntegrator(window_s=10.0, max_hold_s=5.0)
    m.add(_r(8.0, 100.0))
    m.add(_r(12.0, 100.0))
    first, second = m.pop(0), m.pop(1)
    assert first.covered_s == pytest.approx(2.0)
    assert second.covered_s == pytest.approx(2.0)
    assert (first.samples, second.samples) == (1, 0)  # the interval started in window 0


def test_a_gap_longer_than_the_hold_is_not_integrated() -> None:
    m = MeterIntegrator(window_s=10.0, max_hold_s=5.0)
    m.add(_r(0.0, 100.0))
    m.add(_r(6.0, 100.0))  # 6 s > 5 s hold: unknown in between
    m.add(_r(7.0, 100.0))
    assert m.pop(0).covered_s == pytest.approx(1.0)


def test_non_increasing_timestamps_add_nothing() -> None:
    m = MeterIntegrator(window_s=10.0, max_hold_s=5.0)
    m.add(_r(5.0, 100.0))
    m.add(_r(5.0, 100.0))
    assert m.first_index() is None


def test_counter_increments_are_spread_over_time() -> None:
    m = MeterIntegrator(window_s=10.0, max_hold_s=5.0)
    m.add(_r(8.0, 0.0, energy=100.0))
    m.add(_r(12.0, 0.0, energy=104.0))
    first, second = m.pop(0), m.pop(1)
    assert first.counter_wh == pytest.approx(2.0)
    assert second.counter_wh == pytest.approx(2.0)
    assert first.counter_valid
    assert second.counter_valid


def test_a_counter_reset_or_missing_counter_invalidates_the_window() -> None:
    m = MeterIntegrator(window_s=10.0, max_hold_s=5.0)
    m.add(_r(0.0, 0.0, energy=500.0))
    m.add(_r(1.0, 0.0, energy=0.0))  # reset
    m.add(_r(11.0, 0.0, energy=1.0))
    m.add(_r(12.0, 0.0, energy=None))
    assert not m.pop(0).counter_valid
    assert not m.pop(1).counter_valid


def test_pop_first_index_and_drop_before() -> None:
    m = MeterIntegrator(window_s=10.0, max_hold_s=5.0)
    empty = m.pop(7)
    assert empty == WindowTotals(counter_valid=False)
    for ts in (5.0, 9.0, 13.0, 17.0, 21.0, 25.0):
        m.add(_r(ts, 1.0))
    assert m.first_index() == 0
    m.drop_before(2)
    assert m.first_index() == 2
    assert m.index(25.0) == 2


@pytest.mark.parametrize(("window", "hold"), [(0.0, 1.0), (10.0, 0.0), (-1.0, -1.0)])
def test_integrator_needs_positive_lengths(window: float, hold: float) -> None:
    with pytest.raises(ValueError, match="> 0"):
        MeterIntegrator(window, hold)


def test_edge_step_sees_a_change_across_the_window() -> None:
    h = PowerHistory(keep_s=60.0)
    for k in range(41):
        h.add(float(k), 100.0 if k < 25 else 1100.0)
    # Window [10, 20): steady at both edges. Window [20, 30): 100 W at the start, 1100 at the end.
    assert h.edge_step_w(10.0, 20.0, 1.0, 5.0) == 0.0
    assert h.edge_step_w(20.0, 30.0, 1.0, 5.0) == pytest.approx(1000.0)
    assert h.edge_step_w(30.0, 40.0, 1.0, 5.0) == 0.0
    # A step right at an edge is caught by the reach around it.
    assert h.edge_step_w(15.0, 25.0, 1.0, 5.0) == pytest.approx(1000.0)


def test_edge_step_without_history_is_zero() -> None:
    h = PowerHistory(keep_s=60.0)
    assert h.around(10.0, 1.0, 5.0) is None
    assert h.edge_step_w(0.0, 10.0, 1.0, 5.0) == 0.0
    h.add(2.0, 50.0)
    # Only the held reading before the span is known for an edge at 4 s.
    assert h.around(4.0, 1.0, 5.0) == (50.0, 50.0)


def test_steps_sum_real_changes_not_noise() -> None:
    h = PowerHistory(keep_s=100.0)
    powers = [1000.0, 1004.0, 997.0, 2000.0, 2003.0, 500.0, 501.0]
    for k, p in enumerate(powers):
        h.add(float(k), p)
    # Noise of 0.5 % per reading allows ±1 % between two reads; the two jumps count.
    assert h.steps_w(-1.0, 10.0, 0.005, 0.2) == pytest.approx(1003.0 + 1503.0)
    assert h.steps_w(3.5, 10.0, 0.005, 0.2) == pytest.approx(1503.0)


def test_history_forgets_old_readings() -> None:
    h = PowerHistory(keep_s=5.0)
    h.add(0.0, 100.0)
    h.add(10.0, 5000.0)
    assert h.around(0.0, 1.0, 1.0) is None


def test_mismatch_is_the_papers_indicator() -> None:
    assert mismatch_pct(100.0, 98.0) == pytest.approx(2.0)
    assert mismatch_pct(100.0, 103.0) == pytest.approx(-3.0)
    assert mismatch_pct(0.0, 5.0) is None
