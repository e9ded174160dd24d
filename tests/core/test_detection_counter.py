"""The energy counter: the total never runs backwards, never jumps, and follows a wrap."""

from __future__ import annotations

import pytest

from custom_components.smart_energy_meter.semcore.counter import (
    REBASE_CONFIRMATIONS,
    RESET_WINDOW_S,
    EnergyCounter,
    Verdict,
    believable_wh,
)
from custom_components.smart_energy_meter.semcore.protocol import ENERGY_WRAP_WH, POWER_RANGE

TOP = ENERGY_WRAP_WH - 5.0  # 5 Wh before the register wraps


def test_grows_and_holds() -> None:
    counter = EnergyCounter()
    assert counter.value is None
    assert counter.update(1000.0, 0.0) is Verdict.FIRST
    assert counter.update(1000.0, 1.0) is Verdict.UNCHANGED
    assert counter.update(1001.0, 2.0) is Verdict.INCREASE
    assert counter.value == 1001.0


def test_the_believable_step_is_rated_power_over_the_time_between() -> None:
    assert believable_wh(3600.0) == pytest.approx(POWER_RANGE[1] + 10.0)
    assert believable_wh(-5.0) == believable_wh(0.0) == 10.0  # a clock set back gives no credit


def test_a_drop_without_a_reset_is_refused_and_the_total_goes_on() -> None:
    counter = EnergyCounter()
    counter.update(5000.0, 0.0)
    assert counter.update(4000.0, 1.0) is Verdict.REFUSED
    assert counter.value == 5000.0
    assert counter.update(5002.0, 2.0) is Verdict.INCREASE
    assert counter.value == 5002.0


def test_a_corrupt_value_followed_by_good_ones_is_refused_without_freezing() -> None:
    counter = EnergyCounter()
    counter.update(5000.0, 0.0)
    assert counter.update(4_294_967.0, 1.0) is Verdict.REFUSED  # far above 25 kW for 1 s
    for second in range(2, 10):
        assert counter.update(5000.0 + second, float(second)) is Verdict.INCREASE
    assert counter.value == 5009.0


def test_a_jump_the_meter_could_make_is_taken() -> None:
    counter = EnergyCounter()
    counter.update(5000.0, 0.0)
    # An hour without readings at 4 kW.
    assert counter.update(9000.0, 3600.0) is Verdict.INCREASE
    assert counter.value == 9000.0


def test_a_wrap_is_followed_after_any_gap() -> None:
    counter = EnergyCounter()
    counter.update(TOP, 0.0)
    # The first reading after the wrap lands above zero: 10 s at 4 kW, then after an outage.
    assert counter.update(6.0, 10.0) is Verdict.WRAPPED
    assert counter.value == TOP + 11.0
    assert counter.update(20_000.0, 10.0 + 6 * 3600) is Verdict.INCREASE
    assert counter.value == TOP + 5.0 + 20_000.0


def test_a_drop_that_is_no_wrap_is_refused() -> None:
    counter = EnergyCounter()
    counter.update(5095.0, 0.0)
    # Across a wrap this would be almost 10 MWh in a minute.
    assert counter.update(4121.0, 60.0) is Verdict.REFUSED
    assert counter.value == 5095.0


def test_a_new_register_value_is_followed_without_the_jump() -> None:
    """A replaced PZEM: the register goes on from its own value, the total from the old one."""
    counter = EnergyCounter()
    counter.update(5000.0, 0.0)
    for step in range(REBASE_CONFIRMATIONS - 1):
        assert counter.update(3.0 + step, 1.0 + step) is Verdict.REFUSED
        assert counter.value == 5000.0
    assert counter.update(3.0 + REBASE_CONFIRMATIONS, 10.0) is Verdict.REBASED
    # What the new register counted since it was first seen, and not the jump down.
    assert counter.value == 5000.0 + REBASE_CONFIRMATIONS
    assert counter.update(10.0, 11.0) is Verdict.INCREASE
    assert counter.value == 5000.0 + REBASE_CONFIRMATIONS + 10.0 - (3.0 + REBASE_CONFIRMATIONS)


def test_unrelated_corrupt_values_never_rebase() -> None:
    counter = EnergyCounter()
    counter.update(5000.0, 0.0)
    for second, raw in enumerate((9_000_000.0, 7_000_000.0, 8_000_000.0, 1_000.0), start=1):
        assert counter.update(raw, float(second)) is Verdict.REFUSED
    assert counter.value == 5000.0


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


def test_the_state_survives_a_round_trip() -> None:
    counter = EnergyCounter()
    counter.update(TOP, 0.0)
    counter.update(2.0, 5.0)
    again = EnergyCounter.from_dict(counter.as_dict())
    assert (again.value, again.raw, again.at) == (counter.value, counter.raw, counter.at)
    # The floor holds after the round trip: a drop is still refused.
    assert again.update(1.0, 6.0) is Verdict.REFUSED
    assert again.value == counter.value


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"value": 1.0, "raw": 1.0},
        {"value": "1", "raw": 1.0, "at": 1.0},
        {"value": True, "raw": 1.0, "at": 1.0},
        {"value": -1.0, "raw": 1.0, "at": 1.0},
        {"value": float("inf"), "raw": 1.0, "at": 1.0},
        {"value": float("nan"), "raw": 1.0, "at": 1.0},
    ],
)
def test_stored_junk_starts_a_fresh_counter(data: object) -> None:
    assert EnergyCounter.from_dict(data).value is None
