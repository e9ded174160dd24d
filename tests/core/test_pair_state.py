"""A pair's detection state stored by one run and continued by the next (reload, restart)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from custom_components.smart_energy_meter.semcore.debounce import DebounceConfig, DebounceMode
from custom_components.smart_energy_meter.semcore.energy_balance import (
    Status,
    TheftConfig,
    Verdict,
)
from custom_components.smart_energy_meter.semcore.instant_rule import (
    TheftEvent,
)
from tests.core.pair_feed import BYPASS, HONEST, LINE, START, Pair


def _shown(pair: Pair) -> tuple[object, ...]:
    engine = pair.monitor.engine
    return (*pair.monitor.balance_shown(), engine.status, engine.unaccounted_wh)


def test_a_reload_continues_the_open_window_and_the_debounce() -> None:
    """Two excess windows and half of a third before the reload: the third, closing at the
    time it would have, raises the alarm in the new run as it would have in the old one."""
    old = Pair()
    old.seconds(35, HONEST)
    assert old.seconds(37, BYPASS) == []
    open_since = old.monitor.engine.open_since
    assert open_since is not None
    new = old.next_run()
    assert _shown(new) == _shown(old)
    assert new.monitor.engine.open_since == open_since
    went_on = old.seconds(20, BYPASS)
    continued = new.seconds(20, BYPASS)
    assert [c.event for c in continued] == [TheftEvent.DETECTED]
    assert continued == went_on
    window = new.monitor.evaluation.window
    assert window is not None
    # The window open at the reload was closed whole: not a partial (no data) one.
    assert window.start == open_since
    assert window.verdict is Verdict.EXCESS
    assert _shown(new) == _shown(old)


def test_a_restart_mid_theft_shows_theft_at_once_without_a_new_event() -> None:
    old = Pair()
    old.seconds(35, HONEST)
    assert [c.event for c in old.seconds(62, BYPASS)] == [TheftEvent.DETECTED]
    new = old.next_run()
    assert new.monitor.evaluation.status is Status.THEFT
    assert new.seconds(62, BYPASS) == []
    assert [(c.event, c.status) for c in new.seconds(62, HONEST)] == [(TheftEvent.CLEARED, "ok")]


def test_after_a_long_gap_the_window_is_discarded_and_the_verdict_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = Pair()
    old.seconds(35, HONEST)
    old.seconds(62, BYPASS)
    clearing = old.seconds(32, HONEST)  # two clean windows: one more would clear
    assert clearing == []
    hours = 3 * 3600.0
    new = Pair(start=old.ts + hours, seq=old.seq)
    caplog.set_level(logging.DEBUG)
    assert new.monitor.restore(old.stored(), old.now + hours)
    assert "open window is not continued: no reading for 1080" in caplog.text
    engine = new.monitor.engine
    assert engine.status is Status.THEFT
    assert engine.open_since is None
    assert engine.unaccounted_wh == old.monitor.engine.unaccounted_wh
    # Nothing from before the gap counts: the clean run starts over (three whole windows, the
    # first after the first reading is partial), and no window of the gap was judged.
    assert new.seconds(45, HONEST) == []
    assert engine.status is Status.THEFT
    assert [c.event for c in new.seconds(20, HONEST)] == [TheftEvent.CLEARED]


def test_commissioning_in_progress_goes_on() -> None:
    old = Pair()
    old.monitor.engine.start_commissioning()
    old.seconds(95, HONEST)
    new = old.next_run()
    assert new.monitor.engine.commissioning
    assert (
        new.monitor.engine.as_dict()["commissioning"]
        == (old.monitor.engine.as_dict()["commissioning"])
    )
    assert new.monitor.engine.as_dict()["commissioning"]


def test_cusum_statistics_go_on() -> None:
    config = TheftConfig(debounce=DebounceConfig(mode=DebounceMode.CUSUM, cusum_h=20.0))
    old = Pair(config)
    old.seconds(35, HONEST)
    old.seconds(45, BYPASS)
    excess = old.monitor.engine.as_dict()["debounce"]["cusum"][0]
    assert excess > 0
    new = old.next_run(config)
    assert new.monitor.engine.as_dict()["debounce"]["cusum"][0] == excess
    assert new.seconds(120, BYPASS) == old.seconds(120, BYPASS)


def test_windows_of_another_configuration_are_not_continued() -> None:
    """Calibrated while Home Assistant was down: the open windows were integrated with the old
    gains; they restart, as a reconfiguration makes them; the verdict stays."""
    old = Pair()
    old.seconds(35, HONEST)
    old.seconds(62, BYPASS)
    new = old.next_run(TheftConfig(offset_w=1.0))
    assert new.monitor.engine.status is Status.THEFT
    assert new.monitor.engine.open_since is None


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    """A real stored state with one value changed."""

    def broken(state: dict[str, Any]) -> Any:
        *keys, last = path.split(".")
        target = state
        for key in keys:
            target = target[key]
        target[last] = value
        return state

    return broken


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (lambda state: "junk", "pair state: not an object"),
        (lambda state: {**state, "version": 2}, "version 2, not 1"),
        (lambda state: {"schema": "something else"}, "version None, not 1"),
        (_set("balance", []), "balance: not an object"),
        (_set("balance.debounce.status", "lots"), "status: 'lots' is not one of"),
        (_set("balance.unaccounted_wh", "12"), "unaccounted: not a finite number"),
        (_set("balance.unaccounted_wh", -1.0), "unaccounted: below 0"),
        (_set("balance.windows.meters.line.last", [1.0]), "reading: not an array of 4"),
        (_set("balance.windows.history", {}), "power history: not an array"),
        (_set("balance.windows.frontier", {"line": 1.0}), "frontier: not one value per meter"),
        (_set("fed.line", None), "fed: not an array of 2"),
    ],
)
def test_a_corrupt_or_foreign_state_is_ignored_with_one_log_line(
    caplog: pytest.LogCaptureFixture, corrupt: Callable[[dict[str, Any]], Any], reason: str
) -> None:
    old = Pair()
    old.seconds(35, HONEST)
    old.seconds(62, BYPASS)
    new = Pair(start=old.ts, seq=old.seq)
    assert not new.monitor.restore(corrupt(old.stored()), old.now)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "House 1: stored detection state ignored" in warnings[0].getMessage()
    assert reason in warnings[0].getMessage()
    # Nothing of it was taken: the pair starts afresh.
    assert new.monitor.evaluation.status is Status.EVALUATING
    assert new.monitor.engine.unaccounted_wh == 0.0
    assert new.monitor.engine.open_since is None


def test_nothing_stored_is_nothing_restored() -> None:
    pair = Pair()
    assert not pair.monitor.restore(None, START)
    assert pair.monitor.evaluation.status is Status.EVALUATING


def test_a_stored_state_with_each_meters_newest_reading_is_continued() -> None:
    """An earlier version stored each meter's newest reading with the open windows: the state
    is continued, and the readings are not paired with the new run's (never across a cycle)."""
    old = Pair()
    old.seconds(35, HONEST)
    stored = old.stored()
    assert "latest" not in stored["balance"]["windows"]
    stored["balance"]["windows"]["latest"] = {"line": [old.ts, LINE, 0.43, None], "house": None}
    new = Pair(start=old.ts, seq=old.seq)
    assert new.monitor.restore(stored, old.now + 0.5)
    assert new.monitor.engine.open_since == old.monitor.engine.open_since
