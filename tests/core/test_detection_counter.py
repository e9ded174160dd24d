"""The energy counter guard: energy never runs backwards except on a real reset."""

from __future__ import annotations

from custom_components.smart_energy_meter.semcore.counter import (
    NEAR_ZERO_WH,
    RESET_WINDOW_S,
    EnergyCounter,
    Verdict,
)


def test_grows_and_holds() -> None:
    counter = EnergyCounter()
    assert counter.value is None
    assert counter.update(1000.0, 0.0) is Verdict.FIRST
    assert counter.update(1000.0, 1.0) is Verdict.UNCHANGED
    assert counter.update(1001.0, 2.0) is Verdict.INCREASE
    assert counter.value == 1001.0


def test_a_drop_without_a_reset_is_refused() -> None:
    counter = EnergyCounter()
    counter.update(5000.0, 0.0)
    assert counter.update(4000.0, 1.0) is Verdict.REFUSED
    assert counter.value == 5000.0
    assert counter.update(5002.0, 2.0) is Verdict.INCREASE


def test_a_drop_to_near_zero_is_a_reset() -> None:
    counter = EnergyCounter()
    counter.update(5000.0, 0.0)
    assert counter.update(NEAR_ZERO_WH + 1, 1.0) is Verdict.REFUSED
    assert counter.update(NEAR_ZERO_WH, 2.0) is Verdict.RESET
    assert counter.value == NEAR_ZERO_WH


def test_a_drop_after_a_reset_command_is_a_reset_once() -> None:
    counter = EnergyCounter()
    counter.update(5000.0, 0.0)
    counter.expect_reset(10.0)
    assert counter.update(5001.0, 11.0) is Verdict.INCREASE  # read before the reset took effect
    assert counter.update(300.0, 12.0) is Verdict.RESET
    assert counter.value == 300.0
    assert counter.update(200.0, 13.0) is Verdict.REFUSED  # the reset was used up


def test_the_reset_window_expires() -> None:
    counter = EnergyCounter()
    counter.update(5000.0, 0.0)
    counter.expect_reset(0.0)
    assert counter.update(300.0, RESET_WINDOW_S + 1) is Verdict.REFUSED
    assert counter.value == 5000.0
