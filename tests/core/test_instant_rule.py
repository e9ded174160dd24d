"""The pure theft detector: the paper's mismatch rule with pairing, load floor and debounce."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custom_components.smart_energy_meter.semcore.instant_rule import (
    DetectionOptions,
    NotEvaluable,
    PairDetector,
    TheftEvent,
    Transition,
    mismatch_percent,
)

# House powers giving the paper's measured mismatches at a 100 W line load.
LINE = 100.0
PAPER_NORMAL_HOUSE_1 = 99.04  # 0.96 %
PAPER_NORMAL_HOUSE_2 = 98.46  # 1.54 %
PAPER_BYPASS_HOUSE_2 = 82.23  # 17.77 %


def feed(
    detector: PairDetector, line: float, house: float, start: float, seconds: int
) -> list[Transition]:
    """One read per second of each meter, the house 0.1 s after the line (as one node does)."""
    transitions = []
    for second in range(seconds):
        ts = start + second
        for result in (detector.update_line(line, ts), detector.update_house(house, ts + 0.1)):
            if result is not None:
                transitions.append(result)
    return transitions


def cycle(detector: PairDetector, line: float, house: float, ts: float) -> Transition | None:
    """One poll cycle: the line read at ts, the house 0.1 s later; the first waits for the
    second, which answers for the cycle."""
    assert detector.update_line(line, ts) is None
    return detector.update_house(house, ts + 0.1)


def test_mismatch_formula_matches_the_paper() -> None:
    assert mismatch_percent(LINE, PAPER_NORMAL_HOUSE_1) == pytest.approx(0.96)
    assert mismatch_percent(LINE, PAPER_NORMAL_HOUSE_2) == pytest.approx(1.54)
    assert mismatch_percent(LINE, PAPER_BYPASS_HOUSE_2) == pytest.approx(17.77)
    assert mismatch_percent(100.0, 101.0) == pytest.approx(-1.0)  # house above line: negative
    with pytest.raises(ValueError, match="positive"):
        mismatch_percent(0.0, 0.0)


@pytest.mark.parametrize("house", [PAPER_NORMAL_HOUSE_1, PAPER_NORMAL_HOUSE_2])
def test_paper_normal_operation_raises_nothing(house: float) -> None:
    detector = PairDetector()
    assert feed(detector, LINE, house, 1000.0, 120) == []
    assert not detector.theft
    assert detector.mismatch == pytest.approx(mismatch_percent(LINE, house))


def test_paper_bypass_is_detected_after_the_debounce_and_cleared_after_removal() -> None:
    detector = PairDetector()
    # Nine seconds above the threshold: still pending.
    assert feed(detector, LINE, PAPER_BYPASS_HOUSE_2, 0.0, 10) == []
    assert detector.pending_since == pytest.approx(0.1)  # the first complete pair
    transitions = feed(detector, LINE, PAPER_BYPASS_HOUSE_2, 10.0, 5)
    assert len(transitions) == 1
    detected = transitions[0]
    assert detected.event is TheftEvent.DETECTED
    assert detected.at == pytest.approx(10.1)  # the first evaluation 10 s after the first above
    assert detected.mismatch == pytest.approx(17.77)
    assert (detected.line_power, detected.house_power) == (LINE, PAPER_BYPASS_HOUSE_2)
    assert detector.theft
    # Bypass removed: house 2 back at its normal 1.54 %, below threshold - hysteresis.
    transitions = feed(detector, LINE, PAPER_NORMAL_HOUSE_2, 100.0, 15)
    assert [t.event for t in transitions] == [TheftEvent.CLEARED]
    # The first line read at 100 s waits for its house read: never paired with one 86 s old.
    assert transitions[0].at == pytest.approx(110.1)
    assert transitions[0].mismatch == pytest.approx(1.54)
    assert not detector.theft


def test_a_short_spike_does_not_flag() -> None:
    detector = PairDetector()
    assert feed(detector, LINE, PAPER_BYPASS_HOUSE_2, 0.0, 5) == []
    assert feed(detector, LINE, PAPER_NORMAL_HOUSE_1, 5.0, 1) == []
    assert detector.pending_since is None
    assert feed(detector, LINE, PAPER_BYPASS_HOUSE_2, 6.0, 9) == []
    assert not detector.theft


def test_threshold_is_strict_and_hysteresis_holds_the_flag() -> None:
    options = DetectionOptions(threshold=2.0, debounce=0.0, hysteresis=0.5)
    detector = PairDetector(options)
    assert cycle(detector, 100.0, 98.0, 0.0) is None  # exactly 2 %: not above
    result = cycle(detector, 100.0, 97.9, 1.0)
    assert result is not None
    assert result.event is TheftEvent.DETECTED
    # 1.6 % is below the threshold but not below threshold - hysteresis (1.5 %).
    assert cycle(detector, 100.0, 98.4, 2.0) is None
    assert detector.theft
    result = cycle(detector, 100.0, 98.6, 3.0)
    assert result is not None
    assert result.event is TheftEvent.CLEARED


def test_minimum_line_load_floor() -> None:
    detector = PairDetector(DetectionOptions(debounce=0.0, min_load=10.0))
    # 9 W on the line, 5 W in the house: 44 % mismatch, but below the floor.
    assert cycle(detector, 9.0, 5.0, 0.0) is None
    evaluation = detector.evaluation
    assert evaluation is not None
    assert evaluation.mismatch is None
    assert evaluation.reason is NotEvaluable.BELOW_MIN_LOAD
    assert (evaluation.line_power, evaluation.house_power) == (9.0, 5.0)
    assert not detector.theft
    # At the floor it is evaluated.
    result = cycle(detector, 10.0, 5.0, 1.0)
    assert result is not None
    assert result.event is TheftEvent.DETECTED


def test_below_the_floor_restarts_a_pending_detection_but_keeps_a_flag() -> None:
    detector = PairDetector(DetectionOptions(debounce=5.0))
    feed(detector, LINE, PAPER_BYPASS_HOUSE_2, 0.0, 3)
    assert detector.pending_since is not None
    feed(detector, 5.0, 4.0, 3.0, 1)  # load drops under the floor
    assert detector.pending_since is None
    transitions = feed(detector, LINE, PAPER_BYPASS_HOUSE_2, 4.0, 6)
    # The first cycle above the floor again (4.1 s) and the 5 s debounce from there.
    assert [t.at for t in transitions] == [pytest.approx(9.1)]
    feed(detector, 5.0, 5.0, 10.0, 30)  # idle house: no verdict either way
    assert detector.theft


def test_readings_too_far_apart_are_not_paired() -> None:
    detector = PairDetector(DetectionOptions(max_skew=2.0, debounce=0.0))
    assert detector.update_line(LINE, 0.0) is None
    assert detector.evaluation is not None
    assert detector.evaluation.reason is NotEvaluable.NO_HOUSE
    assert detector.update_house(PAPER_BYPASS_HOUSE_2, 2.5) is None
    assert detector.evaluation is not None
    assert detector.evaluation.reason is NotEvaluable.SKEW
    assert detector.evaluation.at == 2.5
    assert detector.mismatch is None
    result = detector.update_line(LINE, 3.0)
    assert result is not None
    assert result.event is TheftEvent.DETECTED
    assert result.at == 3.0


def test_house_only_reports_missing_line() -> None:
    detector = PairDetector()
    assert detector.evaluation is None
    assert detector.update_house(50.0, 7.0) is None
    assert detector.evaluation is not None
    assert detector.evaluation.reason is NotEvaluable.NO_LINE
    assert detector.evaluation.at == 7.0
    assert detector.evaluation.house_power == 50.0
    assert detector.evaluation.line_power is None


def test_interrupt_restarts_debounce_and_keeps_the_verdict() -> None:
    detector = PairDetector(DetectionOptions(debounce=10.0))
    feed(detector, LINE, PAPER_BYPASS_HOUSE_2, 0.0, 8)
    detector.interrupt()
    assert detector.evaluation is None
    assert detector.pending_since is None
    # Eight more seconds after the gap are not enough: the debounce starts over.
    assert feed(detector, LINE, PAPER_BYPASS_HOUSE_2, 30.0, 8) == []
    transitions = feed(detector, LINE, PAPER_BYPASS_HOUSE_2, 38.0, 3)
    assert [t.event for t in transitions] == [TheftEvent.DETECTED]
    detector.interrupt()
    assert detector.theft


def test_a_clock_stepping_back_restarts_the_debounce() -> None:
    detector = PairDetector(DetectionOptions(debounce=10.0))
    feed(detector, LINE, PAPER_BYPASS_HOUSE_2, 100.0, 5)
    assert detector.pending_since == pytest.approx(100.1)
    # The node's clock steps back by a minute (an NTP correction): both reads are older.
    detector.update_line(LINE, 44.0)
    detector.update_house(PAPER_BYPASS_HOUSE_2, 44.1)
    assert detector.pending_since == pytest.approx(44.1)
    assert feed(detector, LINE, PAPER_BYPASS_HOUSE_2, 45.0, 9) == []
    assert not detector.theft


def test_a_load_step_never_pairs_the_new_reading_with_the_old_one() -> None:
    """The paper's lamps: one more 20 W lamp each cycle, then four off. The line message of a
    cycle arrives before the house message; the percentage waits for the house reading."""
    detector = PairDetector()
    shown: list[float | None] = []
    for second, lamps in enumerate([1, 2, 3, 4, 5, 1, 2]):
        line = 20.0 * lamps
        assert detector.update_line(line, second, interval=1.0) is None
        shown.append(detector.mismatch)
        assert detector.update_house(line * 0.99, second + 0.05, interval=1.0) is None
        shown.append(detector.mismatch)
    assert shown[0] is None  # nothing paired yet
    assert shown[1:] == [pytest.approx(1.0)] * 13


def test_a_reading_whose_partner_is_missing_is_never_evaluated_with_another_cycle() -> None:
    detector = PairDetector(DetectionOptions(debounce=0.0))
    cycle(detector, LINE, PAPER_NORMAL_HOUSE_1, 0.0)
    # Cycle 1: the house meter's reading is lost; the line's waits, the value stands.
    assert detector.update_line(200.0, 1.0, interval=1.0) is None
    assert detector.mismatch == pytest.approx(0.96)
    # Cycle 2's house reading is a second away from cycle 1's line reading: not its partner,
    # though within max_skew: the poll interval says it is another cycle.
    assert detector.update_house(PAPER_BYPASS_HOUSE_2, 2.05, interval=1.0) is None
    assert detector.mismatch == pytest.approx(0.96)
    result = detector.update_line(LINE, 2.0, interval=1.0)
    assert result is not None
    assert (result.at, result.line_power, result.house_power) == (
        2.05,
        LINE,
        PAPER_BYPASS_HOUSE_2,
    )


def test_cycles_missed_for_longer_than_two_intervals_restart_the_debounce() -> None:
    detector = PairDetector(DetectionOptions(debounce=10.0))

    def cycles(start: float, count: int, interval: float) -> list[Transition]:
        transitions = []
        for k in range(count):
            ts = start + k * interval
            assert detector.update_line(LINE, ts, interval) is None
            if result := detector.update_house(PAPER_BYPASS_HOUSE_2, ts + 0.1, interval):
                transitions.append(result)
        return transitions

    assert cycles(0.0, 5, 1.0) == []
    assert detector.pending_since == pytest.approx(0.1)
    # One cycle missed (4 s -> 6 s) is not a gap; three are.
    assert cycles(6.0, 1, 1.0) == []
    assert detector.pending_since == pytest.approx(0.1)
    assert cycles(10.0, 1, 1.0) == []
    assert detector.pending_since == pytest.approx(10.1)
    assert [t.at for t in cycles(11.0, 10, 1.0)] == [pytest.approx(20.1)]
    # A node polling every 10 s: cycles 10 s apart hold a pending change (no gap).
    slow = PairDetector(DetectionOptions(debounce=30.0))
    detector = slow
    assert [t.at for t in cycles(100.0, 5, 10.0)] == [pytest.approx(130.1)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 101.0}, "threshold"),
        ({"debounce": -1.0}, "debounce"),
        ({"min_load": 0.0}, "min_load"),
        ({"max_skew": -0.1}, "max_skew"),
        ({"hysteresis": 2.0}, "hysteresis"),
        ({"hysteresis": -0.1}, "hysteresis"),
        ({"threshold": float("nan")}, "finite"),
        ({"debounce": float("inf")}, "finite"),
    ],
)
def test_invalid_options_are_refused(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DetectionOptions(**kwargs)


def test_default_options() -> None:
    options = PairDetector().options
    assert options == DetectionOptions(2.0, 10.0, 0.25, 10.0, 2.0)
    assert options.clear_below == pytest.approx(1.75)


@given(
    line=st.floats(min_value=10.0, max_value=25_000.0),
    ratio=st.floats(min_value=0.0, max_value=0.979),
    seconds=st.integers(min_value=11, max_value=40),
)
def test_a_steady_mismatch_above_threshold_is_always_flagged(
    line: float, ratio: float, seconds: int
) -> None:
    """Any steady mismatch > 2 % above the floor flags exactly once after the debounce."""
    detector = PairDetector()
    transitions = feed(detector, line, line * ratio, 0.0, seconds)
    assert [t.event for t in transitions] == [TheftEvent.DETECTED]
    assert transitions[0].at == pytest.approx(10.1)


@given(
    line=st.floats(min_value=0.0, max_value=25_000.0),
    ratio=st.floats(min_value=0.9801, max_value=1.5),  # 2 % exactly is covered above
)
def test_a_steady_mismatch_at_or_below_threshold_never_flags(line: float, ratio: float) -> None:
    detector = PairDetector()
    assert feed(detector, line, min(line * ratio, 25_000.0), 0.0, 30) == []
