"""Smoke test of the detection benchmark (tiny runs), so that it cannot rot.

The figures themselves come from `python -m benchmarks.detection`; this only checks that the
harness runs and scores the way it claims, on runs of an hour or so.
"""

from __future__ import annotations

import random

import pytest

from benchmarks.detection import paper_percentage
from benchmarks.detection.__main__ import main
from benchmarks.detection.evaluate import OURS, Score, run
from benchmarks.detection.report import check_goals, tables
from benchmarks.detection.scenarios import (
    LONG,
    LONG_CABLE,
    Built,
    Scenario,
    make_world,
    scenarios,
)
from benchmarks.detection.simulation import constant

QUICK = {"scale": 0.0, "lead_in_s": 900.0, "min_tail_s": 2700.0}


def _by_detector(scores: list[Score]) -> dict[str, Score]:
    return {s.detector: s for s in scores}


def test_ours_detects_a_20_percent_theft_without_false_alarms() -> None:
    scenario = next(s for s in scenarios() if s.name == "theft 20 %")
    scores = _by_detector(run(scenario, **QUICK))
    ours = scores[OURS]
    assert ours.episodes >= 3
    assert ours.detected == ours.episodes
    assert ours.fast == ours.episodes
    assert ours.false_alarms == 0
    assert all(30.0 <= latency <= 120.0 for latency in ours.latencies)


def _heavy_long_cable(rng: random.Random, duration: float, _lead_in: float) -> Built:
    # 9 kW (39 A) through 40 m of aluminium 2x16 mm²: about 2.4 % lost in the cable.
    return Built(make_world(rng, duration, constant(9000.0), cable=LONG_CABLE))


def test_long_cable_fools_the_paper_rule_but_not_ours() -> None:
    scenario = Scenario("long cable, 9 kW", "no theft", 0, _heavy_long_cable, LONG, seed=5)
    scores = _by_detector(run(scenario, **QUICK))
    assert scores["paper 2 % instantaneous"].false_alarms > 0
    assert scores[OURS].false_alarms == 0
    assert scores[OURS].episodes == 0


def test_command_line_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--only", "steady 1 kW", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "| steady 1 kW |" in out
    assert "simulated days" in out


def _score(detector: str, **kw: float) -> Score:
    base: dict[str, float] = {"episodes": 10, "detected": 10, "fast": 10, "false_alarms": 0}
    base.update(kw)
    return Score(
        scenario="theft 5 %",
        group="theft",
        detector=detector,
        days=1.0,
        episodes=int(base["episodes"]),
        detected=int(base["detected"]),
        fast=int(base["fast"]),
        latencies=(50.0,) * int(base["detected"]),
        false_alarms=int(base["false_alarms"]),
        quiet_days=0.5,
    )


def test_goal_check_can_fail() -> None:
    fast = {"theft 5 %"}
    assert check_goals([_score(OURS)], OURS, fast) == []
    assert check_goals([_score("other", false_alarms=3)], OURS, fast) == []
    slow = check_goals([_score(OURS, fast=9)], OURS, fast)
    assert len(slow) == 1
    assert "within 2 min" in slow[0]
    noisy = check_goals([_score(OURS, false_alarms=1)], OURS, fast)
    assert len(noisy) == 1
    assert "false alarm" in noisy[0]


def test_tables_show_both_groups() -> None:
    quiet = Score("steady", "no theft", OURS, 2.0, 0, 0, 0, (), 0, 2.0)
    text = tables([quiet, _score(OURS, detected=9, fast=8)])
    assert "| steady | 2.0 | 0 |" in text
    assert "90.0 % / 80.0 % / 50 s (0)" in text


def test_the_paper_scenario_keeps_the_honest_house_within_2_percent() -> None:
    """An hour of the paper's lamps at 1 Hz: the honest house's percentage never leaves ±2 %
    (the paper's pairing of the latest two readings does, at every load step), and the bypass is
    still flagged after the 10 s debounce."""
    honest, thief = paper_percentage.run(3600)
    assert honest.pair == "house1"
    assert len(honest.cycles.values) == 3601  # one evaluation per poll cycle
    assert (honest.cycles.above, honest.cycles.below) == (0, 0)
    assert honest.detected_at is None
    # The same readings paired as the paper did: spikes at the load steps, both ways.
    assert honest.latest.above > 100
    assert honest.latest.below > 20
    assert min(honest.latest.values) < -300
    assert thief.pair == "house2"
    assert len(thief.cycles.values) == 3601
    assert all(16.0 < value < 20.0 for value in thief.cycles.values)  # the 18 % bypass
    assert thief.detected_at == 10.0
