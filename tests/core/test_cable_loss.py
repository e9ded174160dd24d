"""Service cable resistance and loss: the physics the theft check compensates for."""

from __future__ import annotations

import math

import pytest

from custom_components.smart_energy_meter.semcore.cable_loss import (
    RESISTIVITY_20C,
    CableSpec,
    Conductor,
    cable_resistance,
    loss_fraction,
    loss_power,
    resistivity,
)


def test_aluminium_2x16_40m_loses_2_45_percent_at_40_a() -> None:
    # 2 cores x 40 m of 16 mm² aluminium at 20 °C (rho 2.82e-8 ohm m): R = 0.141 ohm, and
    # 40 A at 230 V, unity power factor, dissipates 40 x 0.141 / 230 = 2.45 % of the line power.
    cable = CableSpec(40.0, 16.0, Conductor.ALUMINIUM)
    assert cable.resistance_ohm == pytest.approx(0.141, abs=1e-4)
    assert 100 * loss_fraction(cable.resistance_ohm, 40.0, 230.0) == pytest.approx(2.45, abs=0.01)
    assert loss_power(cable.resistance_ohm, 40.0) == pytest.approx(225.6, abs=0.1)


def test_loss_fraction_is_loss_power_over_line_power() -> None:
    r = 0.2
    for amps in (1.0, 10.0, 63.0):
        assert loss_fraction(r, amps, 230.0) == pytest.approx(loss_power(r, amps) / (230 * amps))


def test_resistance_rises_with_temperature() -> None:
    cold = cable_resistance(40.0, 16.0, Conductor.ALUMINIUM)
    hot = cable_resistance(40.0, 16.0, Conductor.ALUMINIUM, temperature_c=70.0)
    assert hot / cold == pytest.approx(1 + 0.00403 * 50)
    assert resistivity(Conductor.COPPER, -20.0) < RESISTIVITY_20C[Conductor.COPPER]


def test_copper_beats_aluminium_and_geometry_scales() -> None:
    al = cable_resistance(10.0, 10.0, Conductor.ALUMINIUM)
    cu = cable_resistance(10.0, 10.0, Conductor.COPPER)
    assert al / cu == pytest.approx(2.82 / 1.7241, rel=1e-6)
    assert cable_resistance(20.0, 10.0, Conductor.COPPER) == pytest.approx(2 * cu)
    assert cable_resistance(10.0, 20.0, Conductor.COPPER) == pytest.approx(cu / 2)
    assert cable_resistance(10.0, 10.0, Conductor.COPPER, conductors=1) == pytest.approx(cu / 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"length_m": -1.0}, "length"),
        ({"length_m": math.nan}, "length"),
        ({"cross_section_mm2": 0.0}, "cross-section"),
        ({"cross_section_mm2": math.inf}, "cross-section"),
        ({"temperature_c": 500.0}, "temperature"),
        ({"temperature_c": math.nan}, "temperature"),
        ({"conductors": 0}, "conductor"),
    ],
)
def test_cable_spec_rejects_nonsense(kwargs: dict[str, float], message: str) -> None:
    args: dict[str, float] = {"length_m": 10.0, "cross_section_mm2": 10.0} | kwargs
    with pytest.raises(ValueError, match=message):
        CableSpec(
            args["length_m"],
            args["cross_section_mm2"],
            Conductor.COPPER,
            temperature_c=args.get("temperature_c", 20.0),
            conductors=int(args.get("conductors", 2)),
        )


def test_zero_length_cable_has_no_loss() -> None:
    assert CableSpec(0.0, 10.0, Conductor.COPPER).resistance_ohm == 0.0


def test_loss_fraction_needs_a_voltage() -> None:
    with pytest.raises(ValueError, match="voltage"):
        loss_fraction(0.1, 10.0, 0.0)
