"""Statistics of every reading: time-weighted means, extremes, split at period boundaries."""

from __future__ import annotations

import pytest

from custom_components.smart_energy_meter.semcore.period_stats import (
    SHORT_TERM_S,
    PeriodStats,
)

START = 1_800_000_000.0  # a multiple of 300 s


def test_the_mean_is_weighted_by_how_long_each_reading_held() -> None:
    stats = PeriodStats(SHORT_TERM_S)
    stats.add(100.0, START)
    stats.add(400.0, START + 200.0)  # 100 W for 200 s, then 400 W for 100 s
    [period] = stats.close(START + 300.0)
    assert period.start == START
    assert period.mean == pytest.approx(200.0)
    assert (period.min, period.max) == (100.0, 400.0)
    assert period.covered == pytest.approx(300.0)


def test_a_reading_across_a_boundary_counts_in_both_periods() -> None:
    stats = PeriodStats(SHORT_TERM_S)
    stats.add(10.0, START + 290.0)
    closed = stats.add(20.0, START + 310.0)  # 10 W from 290 s to 310 s
    assert [p.mean for p in closed] == [10.0]
    [second] = stats.close(START + 600.0)
    # 10 W for the first 10 s of the second period, then 20 W for 290 s.
    assert second.mean == pytest.approx((10 * 10 + 20 * 290) / 300)
    assert (second.min, second.max) == (10.0, 20.0)


def test_time_without_a_reading_does_not_count() -> None:
    stats = PeriodStats(SHORT_TERM_S)
    stats.add(50.0, START)
    stats.add(None, START + 100.0)  # unavailable for the rest of the period
    [period] = stats.close(START + 300.0)
    assert period.mean == 50.0
    assert period.covered == pytest.approx(100.0)
    assert stats.close(START + 900.0) == []  # nothing measured since


def test_a_short_spike_moves_the_mean_by_its_share_of_time() -> None:
    # The recorder's own compilation would see none of it if the spike was never written.
    stats = PeriodStats(SHORT_TERM_S)
    stats.add(100.0, START)
    stats.add(1100.0, START + 150.0)
    stats.add(100.0, START + 153.0)
    [period] = stats.close(START + 300.0)
    assert period.mean == pytest.approx(110.0)
    assert period.max == 1100.0


def test_a_clock_step_back_does_not_count_time_twice() -> None:
    stats = PeriodStats(SHORT_TERM_S)
    stats.add(100.0, START + 100.0)
    stats.add(200.0, START + 50.0)
    [period] = stats.close(START + 300.0)
    assert period.covered == pytest.approx(200.0)
