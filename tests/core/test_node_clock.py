"""A node's clock judged against arrival: one wrong timestamp changes nothing, a real jump is
followed."""

from __future__ import annotations

import pytest

from custom_components.smart_energy_meter.semcore.clock import (
    AHEAD_TOLERANCE_S,
    JUMP_CONFIRMATIONS,
    NodeClock,
    Placed,
    Refused,
)

TEN_YEARS = 10 * 365 * 86400.0
DELAY = 0.05  # network delay of every reading


def _feed(clock: NodeClock, start: float, seconds: int, *, skew: float = 0.0) -> list[float]:
    """Line and house readings once a second from `start` (arrival time); the node's clock is
    `skew` s ahead of the arrival clock. Returns the placed times of the line meter."""
    placed: list[float] = []
    for second in range(seconds):
        arrival = start + second
        for meter, lag in (("line", 0.0), ("house", 0.1)):
            result = clock.place(meter, arrival - DELAY + lag + skew, arrival + lag)
            assert isinstance(result, Placed), (second, meter, result)
            if meter == "line":
                placed.append(result.ts)
    return placed


def test_a_steady_clock_is_placed_as_it_is() -> None:
    clock = NodeClock()
    placed = _feed(clock, 1000.0, 5, skew=-3600.0)  # an hour behind: no NTP, say
    assert placed == [1000.0 - DELAY - 3600.0 + s for s in range(5)]
    assert clock.refused == 0
    assert clock.jumps == 0


def test_one_reading_from_the_future_is_refused_and_changes_nothing() -> None:
    clock = NodeClock()
    _feed(clock, 1000.0, 3)
    refused = clock.place("line", 1003.0 + TEN_YEARS, 1003.0)
    assert isinstance(refused, Refused)
    assert refused.counted
    assert "after its arrival" in refused.reason
    assert clock.refused == 1
    # The next real readings are placed as if it never came.
    assert _feed(clock, 1003.5, 3) == [1003.5 - DELAY + s for s in range(3)]
    assert clock.jumps == 0


def test_one_reading_from_the_past_is_refused_and_changes_nothing() -> None:
    clock = NodeClock()
    _feed(clock, 1000.0, 3)
    refused = clock.place("house", 1.0, 1003.0)
    assert isinstance(refused, Refused)
    assert "not after the previous reading" in refused.reason
    assert _feed(clock, 1003.5, 3) == [1003.5 - DELAY + s for s in range(3)]


def test_a_reading_slightly_ahead_is_taken_and_teaches_the_offset() -> None:
    clock = NodeClock()
    _feed(clock, 1000.0, 3)
    result = clock.place("line", 1003.0 + AHEAD_TOLERANCE_S / 2, 1003.0)
    assert isinstance(result, Placed)
    assert clock.offset is not None
    assert clock.offset < -DELAY  # the node's clock runs ahead a little


def test_a_clock_set_back_by_seven_hours_is_followed() -> None:
    """Local time (UTC+7) first, then NTP sets the clock to UTC."""
    clock = NodeClock()
    before = _feed(clock, 1000.0, 10, skew=7 * 3600.0)
    results = [
        clock.place("line", 1010.0 + s - DELAY, 1010.0 + s) for s in range(JUMP_CONFIRMATIONS)
    ]
    assert all(isinstance(r, Refused) for r in results[:-1])
    last = results[-1]
    assert isinstance(last, Placed)
    assert last.jump is not None
    assert abs(last.jump - 7 * 3600.0) < 0.5
    assert last.ts > before[-1]
    assert clock.jumps == 1
    # Both meters continue on the new base, one second apart as they were read.
    after = _feed(clock, 1013.0, 3)
    assert after[0] > last.ts
    assert after[1] - after[0] == 1.0


def test_a_first_ntp_sync_far_ahead_is_followed() -> None:
    clock = NodeClock()
    _feed(clock, 1000.0, 5, skew=-1.7e9)  # booted at the epoch, no NTP yet
    for s in range(JUMP_CONFIRMATIONS):
        result = clock.place("house", 1005.0 + s, 1005.0 + s + DELAY)
    assert isinstance(result, Placed)
    assert result.jump is not None
    assert clock.jumps == 1
    after = _feed(clock, 1010.0, 2)
    assert after[0] > result.ts
    assert after[1] - after[0] == 1.0


def test_readings_of_another_meter_do_not_keep_a_refused_one_from_being_heard() -> None:
    """The first reading after a start came from the future (a forged one): the house meter
    is accepted on that offset, the line meter is behind it; it gets heard again."""
    clock = NodeClock()
    assert isinstance(clock.place("line", 1000.0 + TEN_YEARS, 1000.0), Placed)
    results = []
    for second in range(1, 2 * JUMP_CONFIRMATIONS):
        results.append(clock.place("line", 1000.0 + second, 1000.0 + second + DELAY))
        clock.place("house", 1000.0 + second + 0.1, 1000.0 + second + 0.1 + DELAY)
    assert isinstance(results[-1], Placed)
    assert clock.jumps == 1


def test_retained_readings_neither_teach_nor_count() -> None:
    clock = NodeClock()
    # Home Assistant starts: the broker hands out a reading an hour old.
    assert isinstance(clock.place("line", 1000.0, 4600.0, retained=True), Placed)
    assert clock.offset is None
    # The node's live readings follow without a jump.
    placed = _feed(clock, 4601.0, 3, skew=1000.0 - 4600.0)
    assert placed == pytest.approx([1001.0 - DELAY + s for s in range(3)])
    assert clock.jumps == 0
    # A reconnect replays the latest reading: not after the previous one, and not counted.
    replay = clock.place("line", placed[-1], 4700.0, retained=True)
    assert isinstance(replay, Refused)
    assert not replay.counted
    assert clock.refused == 0


def test_a_duplicate_before_the_offset_is_known_is_refused() -> None:
    clock = NodeClock()
    clock.place("line", 1000.0, 1000.0, retained=True)
    assert isinstance(clock.place("line", 1000.0, 1001.0, retained=True), Refused)
