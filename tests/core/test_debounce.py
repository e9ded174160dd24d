"""Debounce and hysteresis of window verdicts into a pair status."""

from __future__ import annotations

import pytest

from custom_components.smart_energy_meter.semcore.debounce import (
    DebounceConfig,
    DebounceMode,
    Status,
    StatusMachine,
    Verdict,
)

E, D, C, G = Verdict.EXCESS, Verdict.DEFICIT, Verdict.CLEAN, Verdict.GREY
SILENT, NONE = Verdict.HOUSE_SILENT, Verdict.NO_DATA


def _feed(machine: StatusMachine, verdicts: list[Verdict]) -> list[Status]:
    statuses = []
    for v in verdicts:
        machine.step(v, {E: 3.0, D: -3.0, C: 0.0, G: 0.7}.get(v, 0.0))
        statuses.append(machine.status)
    return statuses


def test_starts_evaluating_and_a_clean_window_makes_it_ok() -> None:
    m = StatusMachine()
    assert m.status is Status.EVALUATING
    change = m.step(C)
    assert change is not None
    assert (change.previous, change.status, change.reason) == (
        Status.EVALUATING,
        Status.OK,
        "evaluable",
    )
    assert m.step(C) is None


def test_evaluating_until_windows_decide() -> None:
    # Excess windows short of an alarm leave it evaluating, then raise theft directly.
    assert _feed(StatusMachine(), [E, E, E]) == [Status.EVALUATING] * 2 + [Status.THEFT]
    # Windows without data: not evaluable once as many as raise an alarm have passed.
    assert _feed(StatusMachine(), [NONE, NONE, NONE]) == [Status.EVALUATING] * 2 + [
        Status.NOT_EVALUABLE
    ]
    # A restored verdict replaces evaluating; a not evaluable pair becomes ok when clean.
    m = StatusMachine()
    m.restore(Status.THEFT)
    assert m.status is Status.THEFT
    assert _feed(StatusMachine(), [NONE, NONE, NONE, C])[-1] is Status.OK


def test_grey_windows_make_it_evaluable_only_as_a_run() -> None:
    # A steady error just under the threshold is ok once as many windows as an alarm needs
    # have passed; one grey window (a thief's first, straddling a load step) decides nothing.
    m = StatusMachine()
    assert _feed(m, [G, G, G]) == [Status.EVALUATING] * 2 + [Status.OK]
    assert _feed(StatusMachine(), [G, E, E, E]) == [Status.EVALUATING] * 3 + [Status.THEFT]
    assert _feed(StatusMachine(), [G, G, C]) == [Status.EVALUATING] * 2 + [Status.OK]
    # A gap breaks the run; an excess window too.
    m = StatusMachine()
    _feed(m, [G, G])
    m.interrupt()
    assert _feed(m, [G, G]) == [Status.EVALUATING] * 2
    assert _feed(m, [E, G, G]) == [Status.EVALUATING] * 3
    assert _feed(m, [G]) == [Status.OK]


def test_the_quiet_run_survives_the_stored_form() -> None:
    m = StatusMachine()
    _feed(m, [G, G])
    restored = StatusMachine.from_dict(m.as_dict(), m.config)
    assert _feed(restored, [G]) == [Status.OK]
    older = {key: value for key, value in m.as_dict().items() if key != "quiet"}
    assert _feed(StatusMachine.from_dict(older, m.config), [G]) == [Status.EVALUATING]


def test_theft_needs_three_excess_windows_in_a_row() -> None:
    m = StatusMachine()
    assert _feed(m, [C, E, E, C, E, E]) == [Status.OK] * 6
    change = m.step(E, 3.0)
    assert change is not None
    assert change.status is Status.THEFT
    assert change.reason == "excess_windows"


def test_grey_windows_neither_break_nor_extend_a_run() -> None:
    m = StatusMachine()
    assert _feed(m, [C, E, G, G, E, G])[-1] is Status.OK
    assert m.run(E) == 2
    assert _feed(m, [E]) == [Status.THEFT]


def test_clearing_needs_three_clean_windows() -> None:
    m = StatusMachine()
    _feed(m, [C, E, E, E])
    assert _feed(m, [C, C, E, C, G, C]) == [Status.THEFT] * 6
    change = m.step(C)
    assert change is not None
    assert (change.status, change.reason) == (Status.OK, "clean_windows")


def test_deficit_is_a_meter_fault_and_can_replace_theft() -> None:
    m = StatusMachine()
    assert _feed(m, [C, E, E, E, D, D, D]) == [Status.OK] * 3 + [Status.THEFT] * 3 + [
        Status.METER_FAULT
    ]


def test_house_silent_is_tamper_after_its_own_count() -> None:
    m = StatusMachine(DebounceConfig(tamper_windows=2))
    assert _feed(m, [C, SILENT, SILENT]) == [Status.OK, Status.OK, Status.TAMPER_SUSPECTED]


def test_no_data_makes_an_ok_pair_not_evaluable_but_keeps_an_alarm() -> None:
    m = StatusMachine()
    assert _feed(m, [C, NONE, NONE, NONE])[-1] is Status.NOT_EVALUABLE
    assert _feed(m, [NONE]) == [Status.NOT_EVALUABLE]
    _feed(m, [C, E, E, E])
    assert _feed(m, [NONE] * 10)[-1] is Status.THEFT


def test_silence_without_an_alarm_changes_nothing_until_tamper() -> None:
    m = StatusMachine()
    _feed(m, [C])
    assert m.step(SILENT) is None
    assert m.status is Status.OK


def test_cusum_raises_on_one_large_excess() -> None:
    m = StatusMachine(DebounceConfig(mode=DebounceMode.CUSUM, cusum_h=2.0))
    m.step(C, 0.0)
    change = m.step(E, 4.0)  # three thresholds above the reference of one
    assert change is not None
    assert change.status is Status.THEFT
    assert m.cusum == (3.0, 0.0)


def test_cusum_ignores_a_steady_error_below_the_threshold() -> None:
    m = StatusMachine(DebounceConfig(mode=DebounceMode.CUSUM))
    m.step(C, 0.0)
    for _ in range(10_000):
        m.step(G, 0.95)
    assert m.status is Status.OK
    assert m.cusum == (0.0, 0.0)


def test_cusum_accumulates_small_excesses_and_resets_on_clear() -> None:
    m = StatusMachine(DebounceConfig(mode=DebounceMode.CUSUM, cusum_h=2.0))
    m.step(C, 0.0)
    statuses = [(m.step(E, 1.5), m.status)[1] for _ in range(4)]
    assert statuses == [Status.OK, Status.OK, Status.OK, Status.THEFT]
    for _ in range(3):
        m.step(C, 0.0)
    assert m.status is Status.OK
    assert m.cusum == (0.0, 0.0)


def test_cusum_deficit_raises_meter_fault() -> None:
    m = StatusMachine(DebounceConfig(mode=DebounceMode.CUSUM, cusum_h=2.0))
    m.step(C, 0.0)
    m.step(D, -2.0)
    assert m.status is Status.OK
    change = m.step(D, -3.0)
    assert change is not None
    assert change.status is Status.METER_FAULT


@pytest.mark.parametrize(
    "kwargs",
    [{"raise_windows": 0}, {"clear_windows": 0}, {"tamper_windows": 0}, {"cusum_h": 0.0}],
)
def test_config_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        DebounceConfig(**kwargs)  # type: ignore[arg-type]


def test_a_restored_theft_is_confirmed_silently_and_cleared_as_usual() -> None:
    m = StatusMachine()
    m.restore(Status.THEFT)
    assert m.status is Status.THEFT
    # The theft goes on: the windows that confirm it change nothing (no second event).
    assert [m.step(E, 3.0) for _ in range(5)] == [None] * 5
    assert _feed(m, [C, C]) == [Status.THEFT] * 2
    change = m.step(C)
    assert change is not None
    assert (change.previous, change.status) == (Status.THEFT, Status.OK)


def test_a_status_is_restored_only_before_the_first_window() -> None:
    m = StatusMachine()
    _feed(m, [C])
    m.restore(Status.THEFT)
    assert m.status is Status.OK
