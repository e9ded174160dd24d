"""Per-meter gains from multimeter readings, checked against the paper's Table 1."""

from __future__ import annotations

import math

import pytest

from custom_components.smart_energy_meter.semcore.calibration import (
    CalibrationError,
    MeterGains,
    ReferencePoint,
    fit_gain,
    fit_meter_gains,
    relative_error_pct,
)

# Table 1: five 20 W lamps switched on 1..5 at a time, averages of five reads.
# (V meter, V multimeter, I meter, I multimeter)
TABLE_1 = [
    (226.64, 224.64, 0.118, 0.119),
    (226.62, 224.64, 0.241, 0.239),
    (226.56, 224.58, 0.376, 0.375),
    (226.42, 224.42, 0.494, 0.491),
    (226.32, 224.18, 0.602, 0.599),
]
PAPER_V_ERROR_PCT = 0.90
PAPER_I_ERROR_PCT = 0.64


def _point(row: tuple[float, float, float, float]) -> ReferencePoint:
    return ReferencePoint(*row)


def test_table_1_uncalibrated_errors_are_the_papers() -> None:
    v_errors = [abs(relative_error_pct(v, ref)) for v, ref, _, _ in TABLE_1]
    i_errors = [abs(relative_error_pct(i, ref)) for _, _, i, ref in TABLE_1]
    # The paper's averages: 0.90 % and 0.64 %. Its current column was computed from unrounded
    # reads; the table's 3-decimal currents give 0.61 %.
    assert sum(v_errors) / 5 == pytest.approx(PAPER_V_ERROR_PCT, abs=0.01)
    assert sum(i_errors) / 5 == pytest.approx(0.61, abs=0.01)


@pytest.mark.parametrize("row", range(5))
def test_voltage_gain_from_one_row_fixes_the_others(row: int) -> None:
    gains = fit_meter_gains([_point(TABLE_1[row])])
    others = [r for k, r in enumerate(TABLE_1) if k != row]
    errors = [abs(relative_error_pct(v * gains.voltage, ref)) for v, ref, _, _ in others]
    # The 0.9 % offset was steady: what is left is the 0.01 V resolution and the paper's
    # rounding, an order of magnitude below the paper's 0.90 %.
    assert max(errors) < 0.1
    assert max(errors) < PAPER_V_ERROR_PCT / 9


def test_current_gain_from_the_highest_current_row() -> None:
    # Calibrate where the 1 mA display resolution weighs least (0.6 A: 0.17 %).
    gains = fit_meter_gains([_point(TABLE_1[4])])
    before = [abs(relative_error_pct(i, ref)) for _, _, i, ref in TABLE_1[1:4]]
    after = [abs(relative_error_pct(i * gains.current, ref)) for _, _, i, ref in TABLE_1[1:4]]
    assert max(after) < 0.35
    assert sum(after) / 3 < PAPER_I_ERROR_PCT / 2
    assert sum(after) < sum(before) / 2


def test_no_current_gain_fits_rows_1_and_2_together() -> None:
    # Row 1 reads 0.84 % low and row 2 0.84 % high: one digit of 1 mA each. No gain brings
    # both below the paper's 0.64 %: the current column is resolution-limited, not gain-limited.
    (_, _, i1, r1), (_, _, i2, r2) = TABLE_1[0], TABLE_1[1]
    best = min(
        max(abs(relative_error_pct(i1 * g, r1)), abs(relative_error_pct(i2 * g, r2)))
        for g in (0.98 + k * 1e-5 for k in range(4000))
    )
    assert best > PAPER_I_ERROR_PCT
    assert best == pytest.approx(0.84, abs=0.02)


def test_fit_gain_minimises_relative_error() -> None:
    assert fit_gain([101.0], [100.0]) == pytest.approx(100 / 101)
    # Two readings 1 % high and 1 % low: the relative errors balance out around 1.
    assert fit_gain([101.0, 9.9], [100.0, 10.0]) == pytest.approx(1.0, abs=1e-3)


def test_voltage_only_keeps_the_current_gain() -> None:
    old = MeterGains(voltage=1.0, current=1.02)
    gains = fit_meter_gains([ReferencePoint(meter_voltage=230.0, reference_voltage=231.0)], old)
    assert gains.voltage == pytest.approx(231 / 230)
    assert gains.current == 1.02
    amps = fit_meter_gains([ReferencePoint(meter_current=10.0, reference_current=10.1)])
    assert amps.voltage == 1.0
    assert amps.current == pytest.approx(1.01)


def test_power_gain_is_the_product() -> None:
    assert MeterGains(1.01, 0.99).power == pytest.approx(1.01 * 0.99)


@pytest.mark.parametrize(
    ("meter", "reference", "message"),
    [
        ([], [], "no reference"),
        ([1.0], [1.0, 2.0], "differ"),
        ([0.0], [1.0], "finite and > 0"),
        ([math.nan], [1.0], "finite and > 0"),
        ([1.0], [-1.0], "finite and > 0"),
        ([1.0], [1.5], "outside"),
        ([1.5], [1.0], "outside"),
    ],
)
def test_fit_gain_rejects_bad_references(
    meter: list[float], reference: list[float], message: str
) -> None:
    with pytest.raises(CalibrationError, match=message):
        fit_gain(meter, reference)


def test_fit_meter_gains_needs_a_complete_pair() -> None:
    with pytest.raises(CalibrationError, match="no complete"):
        fit_meter_gains([ReferencePoint(meter_voltage=230.0, reference_current=1.0)])
