"""Technical loss of the service cable between the line meter and the house meter.

The line meter sits on the feeder before the house, the house meter at the house: the cable in
between dissipates I²·R, which the line meter sees and the house meter does not. Left alone,
that loss looks like theft (aluminium 2x16 mm², 40 m, 40 A: about 2.45 % of the line power).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Conductor(StrEnum):
    """Conductor metal of the service cable."""

    COPPER = "copper"
    ALUMINIUM = "aluminium"


# Volume resistivity at 20 °C (Ω·m) and its temperature coefficient (1/K) at 20 °C.
# Copper: annealed copper standard (IEC 60028). Aluminium: the usual 2.82e-8 Ω·m of
# electrical-grade aluminium (61 % IACS gives 2.826e-8); both coefficients per IEC 60287.
RESISTIVITY_20C: Final[dict[Conductor, float]] = {
    Conductor.COPPER: 1.7241e-8,
    Conductor.ALUMINIUM: 2.82e-8,
}
TEMPERATURE_COEFFICIENT: Final[dict[Conductor, float]] = {
    Conductor.COPPER: 0.00393,
    Conductor.ALUMINIUM: 0.00403,
}
REFERENCE_TEMPERATURE_C: Final = 20.0
# Conductor temperatures a service cable can plausibly have (frost to a loaded PVC cable's 70 °C
# limit, with margin); outside this a temperature is a typo, not a cable.
TEMPERATURE_RANGE_C: Final = (-40.0, 120.0)


@dataclass(frozen=True, slots=True)
class CableSpec:
    """A service cable as an installer describes it.

    `length_m` is the route length; the current goes out on one conductor and back on the other,
    so the loop is `conductors x length_m` long (2 for single phase: phase and neutral).
    """

    length_m: float
    cross_section_mm2: float
    conductor: Conductor
    temperature_c: float = REFERENCE_TEMPERATURE_C
    conductors: int = 2

    def __post_init__(self) -> None:
        if not (math.isfinite(self.length_m) and self.length_m >= 0):
            raise ValueError(f"cable length must be a finite number >= 0, got {self.length_m}")
        if not (math.isfinite(self.cross_section_mm2) and self.cross_section_mm2 > 0):
            raise ValueError(
                f"cable cross-section must be a finite number > 0, got {self.cross_section_mm2}"
            )
        low, high = TEMPERATURE_RANGE_C
        if not (math.isfinite(self.temperature_c) and low <= self.temperature_c <= high):
            raise ValueError(
                f"cable temperature must be within {low}..{high} °C, got {self.temperature_c}"
            )
        if self.conductors < 1:
            raise ValueError(f"a cable needs at least one conductor, got {self.conductors}")

    @property
    def resistance_ohm(self) -> float:
        """Loop resistance at the cable's temperature."""
        return cable_resistance(
            self.length_m,
            self.cross_section_mm2,
            self.conductor,
            temperature_c=self.temperature_c,
            conductors=self.conductors,
        )


def resistivity(conductor: Conductor, temperature_c: float = REFERENCE_TEMPERATURE_C) -> float:
    """Resistivity (Ω·m) at a temperature, linear in temperature around 20 °C."""
    alpha = TEMPERATURE_COEFFICIENT[conductor]
    return RESISTIVITY_20C[conductor] * (1.0 + alpha * (temperature_c - REFERENCE_TEMPERATURE_C))


def cable_resistance(
    length_m: float,
    cross_section_mm2: float,
    conductor: Conductor,
    *,
    temperature_c: float = REFERENCE_TEMPERATURE_C,
    conductors: int = 2,
) -> float:
    """Loop resistance (Ω) of `conductors` cores of `length_m` each: R = rho(T)·L/A."""
    loop_m = conductors * length_m
    return resistivity(conductor, temperature_c) * loop_m / (cross_section_mm2 * 1e-6)


def loss_power(resistance_ohm: float, current_a: float) -> float:
    """Power (W) the cable dissipates at an RMS current."""
    return current_a * current_a * resistance_ohm


def loss_fraction(resistance_ohm: float, current_a: float, voltage_v: float) -> float:
    """Cable loss as a fraction of the line power V·I (unity power factor): I·R/V."""
    if voltage_v <= 0:
        raise ValueError(f"voltage must be > 0, got {voltage_v}")
    return current_a * resistance_ohm / voltage_v
