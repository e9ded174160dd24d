"""The write gate: significant changes at once, the rest held for the heartbeat."""

from __future__ import annotations

from custom_components.smart_energy_meter.semcore.state_writes import (
    ENERGY_DEADBAND,
    EVERY_CHANGE,
    POWER_DEADBAND,
    VOLTAGE_DEADBAND,
    StateGate,
)


def test_the_first_value_is_written_and_a_repeat_is_not() -> None:
    gate = StateGate(POWER_DEADBAND)
    assert gate.offer(100.0)
    assert not gate.offer(100.0)
    assert not gate.pending


def test_power_is_written_at_once_on_five_percent_or_ten_watts() -> None:
    gate = StateGate(POWER_DEADBAND)
    gate.offer(100.0)
    assert not gate.offer(104.9)  # 4.9 %, 4.9 W: held back
    assert gate.pending
    assert gate.offer(105.0)  # 5 % of the value last written
    assert not gate.pending
    gate.offer(2000.0)
    assert not gate.offer(2009.0)
    assert gate.offer(2010.0)  # 10 W, half a percent of 2 kW


def test_a_slow_drift_is_measured_from_the_value_last_written() -> None:
    gate = StateGate(VOLTAGE_DEADBAND)
    gate.offer(226.0)
    written = [gate.offer(226.0 + 0.5 * n) for n in range(1, 11)]
    # 0.5 V a second: each step is small, but the fourth reaches 2 V from the written value.
    assert written.index(True) == 3
    assert written.count(True) == 2


def test_a_value_going_back_to_the_written_one_is_not_pending() -> None:
    gate = StateGate(VOLTAGE_DEADBAND)
    gate.offer(226.0)
    gate.offer(227.0)
    assert gate.pending
    gate.offer(226.0)
    assert not gate.pending


def test_after_unavailability_the_next_value_is_written() -> None:
    gate = StateGate(POWER_DEADBAND)
    gate.offer(100.0)
    gate.wrote(None)
    assert gate.offer(100.5)


def test_energy_is_written_at_once_from_ten_watt_hours() -> None:
    gate = StateGate(ENERGY_DEADBAND)
    gate.offer(1000.0)
    assert not gate.offer(1009.0)
    assert gate.pending
    assert gate.offer(1010.0)


def test_every_change_writes_every_change() -> None:
    gate = StateGate(EVERY_CHANGE)
    gate.offer(1.0)
    assert all(gate.offer(1.0 + n * 1e-6) for n in range(1, 50))
