"""The recorder benchmark's reference counts: the same stream as ESPHome's 60 s example and at
1 s would write it (a row per change of a shown value)."""

from __future__ import annotations

from benchmarks.recorder.__main__ import PROFILES, StreamLog, scenario


def _log(readings: list[tuple[float, float]]) -> StreamLog:
    log = StreamLog()
    base = {"v": 230.0, "i": 0.5, "e": 1000.0, "f": 50.0, "pf": 0.9}
    log.readings["house1"] = [(t, {**base, "p": p}) for t, p in readings]
    return log


def test_every_second_counts_each_change_of_a_shown_value() -> None:
    log = _log([(0.0, 100.0), (1.0, 100.0), (2.0, 100.04), (3.0, 101.0)])
    # The first reading writes all six quantities; 100.04 W shows as 100.0, no row; 101 W a row.
    assert log.rows("house1", 0.0, 10.0, 0.0) == 6 + 1


def test_sixty_seconds_samples_once_a_minute() -> None:
    log = _log([(float(t), 100.0 + t) for t in range(180)])
    # Readings at 0, 60 and 120 s are sampled; each moves the power.
    assert log.rows("house1", 0.0, 180.0, 60.0) == 6 + 2


def test_the_window_bounds_the_count() -> None:
    log = _log([(float(t), 100.0 + t) for t in range(10)])
    assert log.rows("house1", 5.0, 8.0, 0.0) == 6 + 2


def test_the_scenario_has_one_honest_house_per_profile() -> None:
    nodes = scenario()["nodes"]
    houses = [house for node in nodes for house in node["houses"]]
    assert [house["pair"] for house in houses] == [p.replace("_", "") for p in PROFILES]
    assert all("bypass" not in house for house in houses)
