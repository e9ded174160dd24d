"""One pair's detection without Home Assistant: meters from the meter model, verdict changes out."""

from __future__ import annotations

from custom_components.smart_energy_meter.semcore import protocol as p
from custom_components.smart_energy_meter.semcore.energy_balance import Status
from custom_components.smart_energy_meter.semcore.instant_rule import (
    TheftEvent,
)
from custom_components.smart_energy_meter.semcore.pair_monitor import (
    Outcome,
    TheftChange,
    outcome,
)
from tests.core.pair_feed import BYPASS, HONEST, LINE, START, Pair


def test_the_balance_decides_and_its_changes_carry_the_window() -> None:
    pair = Pair(follows_balance=True)
    assert pair.seconds(35, HONEST) == []
    assert pair.monitor.evaluation.status is Status.OK
    changes = pair.seconds(62, BYPASS)
    assert [c.event for c in changes] == [TheftEvent.DETECTED]
    assert changes[0].status == "theft"
    assert round(changes[0].mismatch or 0, 2) == 17.77
    assert (changes[0].line_power, changes[0].house_power) == (100.0, 82.2)
    # The paper's rule still ran and says theft too, but it does not decide here.
    assert pair.monitor.detector.theft is True


def test_the_paper_rule_decides_when_followed() -> None:
    pair = Pair(follows_balance=False)
    changes = pair.seconds(15, BYPASS)
    assert [c.event for c in changes] == [TheftEvent.DETECTED]
    assert changes[0].status == "theft"
    changes = pair.seconds(15, HONEST)
    assert [(c.event, c.status) for c in changes] == [(TheftEvent.CLEARED, "ok")]


def test_a_reading_already_fed_is_not_fed_again() -> None:
    pair = Pair(follows_balance=True)
    pair.seconds(3, HONEST)
    before = pair.monitor.evaluation
    meter = pair.meters[p.Role.HOUSE]
    assert pair.monitor.update(p.Role.HOUSE, meter, True, START + 10) == []
    assert pair.monitor.evaluation is before


def test_a_silent_meter_interrupts_the_debounce_and_ticks_close_windows() -> None:
    pair = Pair(follows_balance=False)
    pair.seconds(5, BYPASS)
    assert pair.monitor.detector.theft is not True  # the debounce has not run out yet
    # The house meter goes silent: the paper rule's debounce starts over.
    pair.monitor.update(p.Role.HOUSE, pair.meters[p.Role.HOUSE], False, pair.ts)
    pair.seconds(6, BYPASS)
    assert pair.monitor.detector.theft is not True
    # Both silent: only the tick moves the balance on, on the node's clock.
    windows = pair.monitor.evaluation.window
    pair.monitor.tick(pair.ts + 60.0)
    assert pair.monitor.evaluation.window != windows


def test_nothing_to_tick_before_the_first_reading() -> None:
    pair = Pair(follows_balance=True)
    assert pair.monitor.tick(START) == []
    assert pair.monitor.evaluation.window is None


def test_the_theft_percentage_waits_for_the_other_meter_of_the_cycle() -> None:
    pair = Pair(follows_balance=False)
    announce = p.Announce(
        "node1", "1.0", "Pole 7", "ESP32", "1.0.0", "24:6f:28:a1:b2:c3", 1.0,
        (p.MeterInfo("line1", p.Role.LINE, "house1", 1),
         p.MeterInfo("house1", p.Role.HOUSE, "house1", 2)),
        (), {}, "192.168.1.50",
    )  # fmt: skip
    pair.model.apply(p.announce_topic("sem", "node1"), p.encode_announce(announce), False, START)
    pair.seconds(3, HONEST)
    assert pair.meters[p.Role.LINE].interval == 1.0  # the node's announced poll interval
    shown = round(pair.monitor.detector.mismatch or 0, 2)
    assert shown == 0.96
    # A load step: the line's reading of the new cycle alone changes nothing shown.
    pair.read(p.Role.LINE, 4 * LINE)
    assert round(pair.monitor.detector.mismatch or 0, 2) == shown
    pair.read(p.Role.HOUSE, 4 * HONEST, 0.1)
    assert round(pair.monitor.detector.mismatch or 0, 2) == shown
    assert pair.monitor.detector.evaluation is not None
    assert pair.monitor.detector.evaluation.line_power == 4 * LINE


def test_outcome_says_what_a_change_of_verdict_amounts_to() -> None:
    cleared = TheftEvent.CLEARED
    assert outcome(TheftChange(TheftEvent.DETECTED, 17.77, 100.0, 82.23, "theft"), 10.0) is (
        Outcome.DETECTED
    )
    assert outcome(TheftChange(cleared, 0.96, 100.0, 99.04, "ok"), 10.0) is Outcome.CLEARED
    # Clean windows of a house switched off balance at nothing: not a theft seen to stop.
    assert outcome(TheftChange(cleared, None, 0.0, 0.0, "ok"), 10.0) is Outcome.NO_LOAD
    assert outcome(TheftChange(cleared, 20.0, 9.9, 8.0, "ok"), 10.0) is Outcome.NO_LOAD
    assert outcome(TheftChange(cleared, None, None, None, "ok"), 10.0) is Outcome.CLEARED
    for status in ("meter_fault", "tamper_suspected", "not_evaluable"):
        assert outcome(TheftChange(cleared, None, 50.0, 60.0, status), 10.0) is Outcome(status)
