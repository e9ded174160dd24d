"""The per-pair theft engine: windows, loss compensation, statuses, commissioning."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from custom_components.smart_energy_meter.semcore.cable_loss import CableSpec, Conductor
from custom_components.smart_energy_meter.semcore.calibration import MeterGains
from custom_components.smart_energy_meter.semcore.commissioning import FitError
from custom_components.smart_energy_meter.semcore.energy_balance import (
    EnergySource,
    Evaluation,
    MeterReading,
    Role,
    Status,
    TheftConfig,
    TheftEngine,
    Transition,
    Verdict,
    WindowResult,
)
from custom_components.smart_energy_meter.semcore.uncertainty import (
    ThresholdMode,
    UncertaintyModel,
)

T0 = 1_764_072_000.0  # a multiple of the 15 s window
Watts = Callable[[float], float]


def const(watts: float) -> Watts:
    return lambda _t: watts


class Pair:
    """Feeds a line and a house meter once a second, the house read 50 ms after the line."""

    def __init__(self, engine: TheftEngine, start: float = T0) -> None:
        self.engine = engine
        self.t = start
        self.transitions: list[Transition] = []
        self.last: Evaluation = engine.evaluation()
        self.line_wh = 0.0
        self.house_wh = 0.0

    def run(
        self,
        seconds: int,
        line: Watts,
        house: Watts,
        *,
        volts: float = 230.0,
        house_state: str = "ok",  # ok | error | silent
        line_state: str = "ok",
        with_current: bool = True,
        with_voltage: bool = True,
    ) -> Status:
        for _ in range(seconds):
            self._one(
                Role.LINE, self.t, line(self.t), volts, line_state, with_current, with_voltage
            )
            self._one(
                Role.HOUSE, self.t + 0.05, house(self.t), volts, house_state, with_current,
                with_voltage,
            )  # fmt: skip
            self.t += 1.0
        return self.engine.status

    def _one(
        self,
        role: Role,
        ts: float,
        watts: float,
        volts: float,
        state: str,
        with_current: bool,
        with_voltage: bool,
    ) -> None:
        if state == "silent":
            return
        if state == "error":
            reading = MeterReading(ts, available=False)
        else:
            if role is Role.LINE:
                self.line_wh += watts / 3600
            else:
                self.house_wh += watts / 3600
            reading = MeterReading(
                ts,
                power_w=watts,
                voltage_v=volts if with_voltage else None,
                current_a=watts / volts if with_current else None,
                energy_wh=math.floor(self.line_wh if role is Role.LINE else self.house_wh),
            )
        self.last = self.engine.feed(role, reading)
        self.transitions += self.last.transitions

    def statuses(self) -> list[Status]:
        return [t.status for t in self.transitions]


LONG_AL = CableSpec(40.0, 16.0, Conductor.ALUMINIUM)


def test_a_balanced_pair_is_ok() -> None:
    pair = Pair(TheftEngine())
    assert pair.engine.status is Status.EVALUATING
    assert pair.run(300, const(1000.0), const(1000.0)) is Status.OK
    assert pair.statuses() == [Status.OK]
    assert pair.transitions[0].reason == "evaluable"
    assert pair.last.instant_mismatch_pct == pytest.approx(0.0)
    assert pair.last.window_mismatch_pct == pytest.approx(0.0)
    assert pair.last.unaccounted_wh == pytest.approx(0.0, abs=1e-9)
    assert pair.last.window is not None
    assert pair.last.window.verdict is Verdict.CLEAN


def test_theft_is_raised_after_three_windows_and_cleared_after_three() -> None:
    pair = Pair(TheftEngine())
    pair.run(100, const(1000.0), const(1000.0))
    start = pair.t
    pair.run(300, const(1100.0), const(1000.0))  # 100 W (9 %) bypassed
    raised = next(t for t in pair.transitions if t.status is Status.THEFT)
    assert raised.reason == "excess_windows"
    assert 30.0 <= raised.at - start <= 70.0  # three 15 s windows, plus the partial one
    assert raised.window.unexplained_pct == pytest.approx(100 / 11, rel=0.01)
    assert pair.last.instant_mismatch_pct == pytest.approx(100 / 11)
    # Unaccounted energy: 100 W for 300 s, give or take the windows still open.
    assert pair.last.unaccounted_wh == pytest.approx(100 * 300 / 3600, rel=0.1)
    end = pair.t
    assert pair.run(200, const(1000.0), const(1000.0)) is Status.OK
    cleared = pair.transitions[-1]
    assert (cleared.previous, cleared.reason) == (Status.THEFT, "clean_windows")
    assert 30.0 <= cleared.at - end <= 70.0
    total = pair.last.unaccounted_wh
    pair.run(100, const(1000.0), const(900.0 + 100.0))
    assert pair.last.unaccounted_wh == total  # never decreases, nothing new to add


def test_cable_loss_is_compensated_not_theft() -> None:
    r = LONG_AL.resistance_ohm

    def line(_t: float) -> float:
        return 230.0 * 40.0  # 40 A at 230 V, 2.45 % of it lost in the cable

    def house(_t: float) -> float:
        return 230.0 * 40.0 - 40.0**2 * r

    compensated = Pair(TheftEngine(TheftConfig(cable=LONG_AL)))
    assert compensated.run(600, line, house) is Status.OK
    assert compensated.last.instant_mismatch_pct == pytest.approx(2.45, abs=0.01)
    assert compensated.last.window_mismatch_pct == pytest.approx(0.0, abs=0.01)
    window = compensated.last.window
    assert window is not None
    assert window.mismatch_pct == pytest.approx(2.45, abs=0.01)

    # The paper's fixed 2 % without the cable data calls it theft.
    naive = TheftConfig(uncertainty=UncertaintyModel(mode=ThresholdMode.FIXED))
    assert Pair(TheftEngine(naive)).run(600, line, house) is Status.THEFT


def test_fixed_mode_detects_above_its_percentage_only() -> None:
    fixed = TheftConfig(uncertainty=UncertaintyModel(mode=ThresholdMode.FIXED, fixed_pct=2.0))
    assert Pair(TheftEngine(fixed)).run(300, const(1000.0), const(985.0)) is Status.OK
    assert Pair(TheftEngine(fixed)).run(300, const(1000.0), const(970.0)) is Status.THEFT


def test_house_above_line_is_a_meter_fault() -> None:
    pair = Pair(TheftEngine())
    assert pair.run(300, const(1000.0), const(1100.0)) is Status.METER_FAULT
    assert pair.transitions[-1].reason == "deficit_windows"


def test_house_meter_errors_while_the_line_draws_is_tamper() -> None:
    pair = Pair(TheftEngine())
    pair.run(60, const(500.0), const(500.0))
    assert pair.run(120, const(500.0), const(500.0), house_state="error") is (
        Status.TAMPER_SUSPECTED
    )
    assert pair.transitions[-1].reason == "house_silent_windows"
    assert pair.last.instant_mismatch_pct is None
    # Back, and balanced: clears after clean windows.
    assert pair.run(120, const(500.0), const(500.0)) is Status.OK


def test_a_silent_house_meter_is_tamper_too() -> None:
    pair = Pair(TheftEngine())
    pair.run(60, const(500.0), const(500.0))
    assert pair.run(120, const(500.0), const(0.0), house_state="silent") is (
        Status.TAMPER_SUSPECTED
    )


def test_house_offline_without_load_is_only_not_evaluable() -> None:
    pair = Pair(TheftEngine())
    pair.run(60, const(5.0), const(5.0))
    assert pair.run(120, const(5.0), const(5.0), house_state="error") is Status.NOT_EVALUABLE
    assert pair.statuses() == [Status.OK, Status.NOT_EVALUABLE]


def test_line_meter_offline_is_not_evaluable() -> None:
    pair = Pair(TheftEngine())
    pair.run(60, const(500.0), const(500.0))
    assert pair.run(120, const(500.0), const(500.0), line_state="error") is (Status.NOT_EVALUABLE)
    assert pair.transitions[-1].reason == "no_data_windows"


def test_tick_closes_windows_when_both_meters_are_silent() -> None:
    engine = TheftEngine()
    assert engine.tick(T0).status is Status.EVALUATING  # nothing fed yet: no effect
    pair = Pair(engine)
    pair.run(100, const(800.0), const(800.0))
    last = pair.t
    # Within the clock tolerance a live meter is not taken for silent.
    assert engine.tick(last + 20.0).transitions == ()
    assert engine.tick(math.nan).status is Status.OK
    result = engine.tick(last + 200.0)
    assert [t.status for t in result.transitions] == [Status.NOT_EVALUABLE]


def test_an_alarm_survives_missing_data() -> None:
    pair = Pair(TheftEngine())
    pair.run(300, const(1100.0), const(1000.0))
    assert pair.engine.status is Status.THEFT
    pair.engine.tick(pair.t + 3600.0)
    assert pair.engine.status is Status.THEFT


def test_a_long_gap_is_handled_quickly() -> None:
    pair = Pair(TheftEngine())
    pair.run(100, const(800.0), const(800.0))
    started = time.perf_counter()
    pair.t += 30 * 86_400.0  # a month without data (node clock jump, long outage)
    assert pair.run(100, const(800.0), const(800.0)) is Status.OK
    assert time.perf_counter() - started < 1.0
    assert Status.NOT_EVALUABLE in pair.statuses()


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        (MeterReading(math.nan, 1.0), "timestamp"),
        (MeterReading(-1.0, 1.0), "timestamp"),
        (MeterReading(T0 + 10.5, None), "without power"),
        (MeterReading(T0 + 10.5, math.nan), "non-finite"),
        (MeterReading(T0 + 10.5, -5.0), "negative"),
        (MeterReading(T0 + 10.5, 5.0, current_a=math.inf), "non-finite"),
        (MeterReading(T0 + 10.5, 5.0, energy_wh=-1.0), "negative"),
        (MeterReading(T0 + 5.0, 5.0), "not after"),
    ],
)
def test_bad_readings_are_rejected_and_change_nothing(reading: MeterReading, reason: str) -> None:
    pair = Pair(TheftEngine())
    pair.run(10, const(100.0), const(100.0))
    before = pair.engine.evaluation()
    result = pair.engine.feed(Role.HOUSE, reading)
    assert result.rejected is not None
    assert reason in result.rejected
    assert result.transitions == ()
    assert pair.engine.evaluation() == before
    # Good readings go on being accounted.
    assert pair.run(100, const(100.0), const(100.0)) is Status.OK


def test_instant_mismatch_needs_the_two_readings_of_one_cycle() -> None:
    engine = TheftEngine()
    engine.feed_line(MeterReading(T0, 100.0))
    assert engine.feed_house(MeterReading(T0 + 20.0, 98.0)).instant_mismatch_pct is None
    assert engine.feed_line(MeterReading(T0 + 21.0, 100.0)).instant_mismatch_pct == (
        pytest.approx(2.0)
    )
    # A line reading of the next cycle waits for its house reading: never 100 % from 0 W
    # against the house's reading of the cycle before.
    assert engine.feed_line(MeterReading(T0 + 22.0, 0.0)).instant_mismatch_pct == (
        pytest.approx(2.0)
    )
    assert engine.feed_house(MeterReading(T0 + 22.05, 0.0)).instant_mismatch_pct is None
    assert engine.feed_line(MeterReading(T0 + 23.0, 200.0)).instant_mismatch_pct is None
    assert engine.feed_house(MeterReading(T0 + 23.05, 196.0)).instant_mismatch_pct == (
        pytest.approx(2.0)
    )


def test_calibration_gains_correct_a_meter() -> None:
    # The house meter's current channel reads 3 % low.
    def house(_t: float) -> float:
        return 1000.0 * 0.97

    assert Pair(TheftEngine()).run(300, const(1000.0), house) is Status.THEFT
    calibrated = TheftConfig(house_gains=MeterGains(current=1 / 0.97))
    assert Pair(TheftEngine(calibrated)).run(300, const(1000.0), house) is Status.OK
    line_gain = TheftConfig(line_gains=MeterGains(voltage=0.97))
    assert Pair(TheftEngine(line_gain)).run(300, const(1000.0), house) is Status.OK


@pytest.mark.parametrize("with_voltage", [True, False])
def test_without_current_the_loss_uses_power_over_voltage(with_voltage: bool) -> None:
    r = LONG_AL.resistance_ohm

    def house(_t: float) -> float:
        return 9200.0 - 40.0**2 * r

    pair = Pair(TheftEngine(TheftConfig(cable=LONG_AL)))
    status = pair.run(
        600, const(9200.0), house, with_current=False, with_voltage=with_voltage
    )  # fmt: skip
    assert status is Status.OK
    window = pair.last.window
    assert window is not None
    hours = pair.engine.config.window_s / 3600
    assert window.loss_wh == pytest.approx(40.0**2 * r * hours, rel=1e-3)


def test_counter_windows() -> None:
    config = TheftConfig(window_s=600.0, energy_source=EnergySource.COUNTERS)
    pair = Pair(TheftEngine(config))
    assert pair.run(3000, const(2000.0), const(2000.0)) is Status.OK
    window = pair.last.window
    assert window is not None
    assert window.line_wh == pytest.approx(2000 * 600 / 3600, abs=1.0)
    assert pair.last.window_mismatch_pct == pytest.approx(0.0, abs=0.5)
    assert pair.run(2400, const(2000.0), const(1800.0)) is Status.THEFT


def test_a_counter_reset_makes_the_window_not_evaluable() -> None:
    config = TheftConfig(window_s=600.0, energy_source=EnergySource.COUNTERS)
    pair = Pair(TheftEngine(config))
    pair.run(1800, const(2000.0), const(2000.0))
    pair.line_wh = 0.0  # the line meter's counter was reset
    pair.run(1200, const(2000.0), const(2000.0))
    verdicts = []
    pair.run(1, const(2000.0), const(2000.0))
    window = pair.last.window
    assert window is not None
    verdicts.append(window.verdict)
    pair.house_wh = 0.0  # now the house meter's
    pair.run(1200, const(2000.0), const(2000.0))
    assert pair.engine.status is Status.OK


def _varied(t: float) -> float:
    # Load levels from 100 W to 9 kW, changing every 200 s.
    return (100.0, 2500.0, 600.0, 9000.0, 1500.0, 5000.0, 300.0, 7000.0)[int(t // 200) % 8]


def _with_losses(house: Watts, r: float, offset: float, house_low: float) -> tuple[Watts, Watts]:
    """(line, house meter) for a true house load: cable loss, a constant draw, gain error."""

    def line(t: float) -> float:
        # The cable carries the line current, which includes the loss: solve by iteration.
        watts = house(t) + offset
        for _ in range(5):
            watts = house(t) + (watts / 230.0) ** 2 * r + offset
        return watts

    def house_meter(t: float) -> float:
        return house(t) * (1.0 - house_low)

    return line, house_meter


def test_commissioning_fits_the_pair_and_sharpens_detection() -> None:
    line, house = _with_losses(_varied, r=0.1, offset=1.0, house_low=0.006)
    engine = TheftEngine()
    engine.start_commissioning()
    started = engine.commissioning
    assert started
    pair = Pair(engine)
    pair.run(2 * 3600, line, house)
    fit = engine.finish_commissioning()
    assert not engine.commissioning
    assert fit.resistance_ohm == pytest.approx(0.1, rel=0.02)
    assert fit.offset_w == pytest.approx(1.0, abs=0.3)
    assert engine.config.house_gain == pytest.approx(1 / 0.994, rel=2e-4)
    assert engine.config.resistance_ohm == fit.resistance_ohm
    assert engine.config.uncertainty.gain_match_pct == pytest.approx(0.2, abs=0.01)
    assert engine.config.uncertainty.resistance_pct == 5.0

    # A 2 % theft: caught after commissioning; with the same corrections but the default
    # (uncalibrated) error budget it stays below the threshold.
    def thief(t: float) -> float:
        return line(t) + 0.02 * _varied(t)

    assert pair.run(600, thief, house) is Status.THEFT
    told = TheftConfig(resistance_ohm=0.1, offset_w=1.0, house_gain=1 / 0.994)
    plain = Pair(TheftEngine(told), start=pair.t)
    assert plain.run(600, line, house) is Status.OK
    assert plain.run(600, thief, house) is Status.OK


def test_commissioning_with_cable_data_keeps_r() -> None:
    cable = CableSpec(30.0, 10.0, Conductor.COPPER)
    line, house = _with_losses(_varied, r=cable.resistance_ohm, offset=0.5, house_low=0.0)
    engine = TheftEngine(TheftConfig(cable=cable))
    engine.start_commissioning()
    Pair(engine).run(3600, line, house)
    fit = engine.finish_commissioning(fit_resistance=False, match_gain=False)
    assert fit.resistance_ohm == cable.resistance_ohm
    assert fit.offset_w == pytest.approx(0.5, abs=0.2)
    assert engine.config.uncertainty.gain_match_pct is None
    assert engine.config.uncertainty.resistance_pct == 15.0


def test_commissioning_refuses_what_it_cannot_fit() -> None:
    engine = TheftEngine()
    with pytest.raises(FitError, match="not started"):
        engine.finish_commissioning()
    engine.start_commissioning()
    pair = Pair(engine)
    pair.run(600, const(1000.0), const(1000.0))
    with pytest.raises(FitError, match="commission for longer"):
        engine.finish_commissioning()
    pair.run(3000, const(1000.0), const(1000.0))
    with pytest.raises(FitError, match="collinear"):
        engine.finish_commissioning()
    assert engine.commissioning  # still collecting
    engine.cancel_commissioning()
    assert not engine.commissioning


@pytest.mark.parametrize(
    ("r", "offset", "house_low", "message"),
    [
        (-0.05, 0.0, 0.0, "negative"),
        (0.0, 0.0, 0.08, "disagree"),
        (0.0, 80.0, 0.0, "constant"),
    ],
)
def test_commissioning_refuses_implausible_results(
    r: float, offset: float, house_low: float, message: str
) -> None:
    line, house = _with_losses(_varied, r=r, offset=offset, house_low=house_low)
    engine = TheftEngine()
    engine.start_commissioning()
    Pair(engine).run(3600, line, house)
    with pytest.raises(FitError, match=message):
        engine.finish_commissioning()


def _noisy(levels: tuple[float, ...], noise_w: float, seed: int) -> Watts:
    rng = random.Random(seed)
    return lambda t: levels[int(t // 200) % len(levels)] + rng.uniform(-noise_w, noise_w)


def test_commissioning_refuses_an_undetermined_gain() -> None:
    # The load hardly moves (1000 or 1008 W) under ±3 W of reading noise.
    engine = TheftEngine(TheftConfig(resistance_ohm=0.0))
    engine.start_commissioning()
    levels = (1000.0, 1008.0)
    Pair(engine).run(3600, _noisy(levels, 3.0, 1), _noisy(levels, 3.0, 2))
    with pytest.raises(FitError, match="gain ratio"):
        engine.finish_commissioning(fit_resistance=False)


def test_commissioning_refuses_an_undetermined_resistance() -> None:
    engine = TheftEngine()
    engine.start_commissioning()
    levels = (500.0, 520.0)
    Pair(engine).run(3600, _noisy(levels, 2.0, 1), _noisy(levels, 2.0, 2))
    with pytest.raises(FitError, match="cable resistance is only known"):
        engine.finish_commissioning(match_gain=False)


def test_reconfigure_keeps_status_and_total() -> None:
    pair = Pair(TheftEngine())
    pair.run(300, const(1100.0), const(1000.0))
    total = pair.engine.unaccounted_wh
    pair.engine.reconfigure(TheftConfig(window_s=30.0))
    assert pair.engine.status is Status.THEFT
    assert pair.engine.unaccounted_wh == total
    assert pair.engine.config.window_s == 30.0


def test_unaccounted_total_is_restored() -> None:
    assert TheftEngine(unaccounted_wh=12.5).unaccounted_wh == 12.5
    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError, match="unaccounted"):
            TheftEngine(unaccounted_wh=bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_s": 0.0}, "window_s"),
        ({"max_hold_s": math.nan}, "max_hold_s"),
        ({"resistance_ohm": -1.0}, "resistance_ohm"),
        ({"house_gain": 2.0}, "house_gain"),
        ({"offset_w": math.inf}, "offset_w"),
        ({"nominal_voltage_v": 0.0}, "nominal_voltage_v"),
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TheftConfig(**kwargs)  # type: ignore[arg-type]


def test_effective_resistance() -> None:
    assert TheftConfig().effective_resistance_ohm == 0.0
    assert TheftConfig(cable=LONG_AL).effective_resistance_ohm == LONG_AL.resistance_ohm
    fitted = TheftConfig(cable=LONG_AL, resistance_ohm=0.2)
    assert fitted.effective_resistance_ohm == 0.2
    assert replace(fitted, resistance_ohm=None).effective_resistance_ohm == LONG_AL.resistance_ohm


def test_window_result_without_a_balance() -> None:
    empty = WindowResult(0.0, 20.0, Verdict.NO_DATA)
    assert empty.mismatch_pct is None
    assert empty.unexplained_pct is None
    idle = WindowResult(0.0, 20.0, Verdict.CLEAN, 0.0, 0.0, 0.0, 0.0)
    assert idle.unexplained_pct is None


def test_late_house_readings_for_closed_windows_are_harmless() -> None:
    engine = TheftEngine()
    pair = Pair(engine)
    pair.run(100, const(500.0), const(500.0), house_state="silent")
    # The house meter turns up with readings from a minute ago (lagging node).
    for k in range(10):
        result = engine.feed_house(MeterReading(pair.t - 60.0 + k, 500.0))
        assert result.rejected is None
    assert pair.run(120, const(500.0), const(500.0)) is Status.OK
