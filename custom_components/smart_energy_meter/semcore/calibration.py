"""Per-meter calibration gains fitted from reference (multimeter) readings.

A PZEM-004T is specified at ±0.5 %, but a given unit is often off by a steady amount (the
paper's meter read voltage 0.9 % high in every row of its Table 1). A gain per quantity removes
that steady part; what remains is the reading's resolution and the reference's own error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

# A gain outside this range is a wrong reference (other phase, mA typed as A), not a meter error.
GAIN_RANGE: Final = (0.9, 1.1)


class CalibrationError(ValueError):
    """Reference readings that cannot give a gain."""


@dataclass(frozen=True, slots=True)
class MeterGains:
    """Multiplicative corrections for one meter's readings.

    Active power and energy are scaled by voltage x current gain: the PZEM computes them from
    the same voltage and current channels.
    """

    voltage: float = 1.0
    current: float = 1.0

    @property
    def power(self) -> float:
        """The gain of active power and energy: voltage gain times current gain."""
        return self.voltage * self.current


@dataclass(frozen=True, slots=True)
class ReferencePoint:
    """One simultaneous reading: the meter's value and the reference instrument's.

    Either pair may be missing (a multimeter on the voltage range only gives voltage).
    """

    meter_voltage: float | None = None
    reference_voltage: float | None = None
    meter_current: float | None = None
    reference_current: float | None = None


def fit_gain(meter: Sequence[float], reference: Sequence[float]) -> float:
    """Gain g minimising the relative errors Σ((g·meter - ref)/ref)².

    Relative errors weigh a 0.1 A point like a 10 A point, matching how accuracy is quoted.
    Solution: g = Σ(m/r) / Σ(m/r)².
    """
    if len(meter) != len(reference):
        raise CalibrationError("meter and reference readings differ in number")
    if not meter:
        raise CalibrationError("no reference readings")
    for m, r in zip(meter, reference, strict=True):
        if not (math.isfinite(m) and math.isfinite(r) and m > 0 and r > 0):
            raise CalibrationError(f"readings must be finite and > 0, got {m} and {r}")
    ratios = [m / r for m, r in zip(meter, reference, strict=True)]
    gain = sum(ratios) / sum(q * q for q in ratios)
    low, high = GAIN_RANGE
    if not low <= gain <= high:
        raise CalibrationError(
            f"fitted gain {gain:.4f} is outside {low}..{high}: check the reference readings"
        )
    return gain


def fit_meter_gains(
    points: Sequence[ReferencePoint], current: MeterGains | None = None
) -> MeterGains:
    """Voltage and current gains from reference points.

    A quantity without any reference reading keeps its gain from `current` (default 1.0), so
    voltage and current can be calibrated one at a time. The meter values must be the
    raw, uncorrected readings.
    """
    base = current or MeterGains()
    volts = [
        (p.meter_voltage, p.reference_voltage)
        for p in points
        if p.meter_voltage is not None and p.reference_voltage is not None
    ]
    amps = [
        (p.meter_current, p.reference_current)
        for p in points
        if p.meter_current is not None and p.reference_current is not None
    ]
    if not volts and not amps:
        raise CalibrationError("no complete meter/reference pair in the readings")
    voltage = fit_gain([m for m, _ in volts], [r for _, r in volts]) if volts else base.voltage
    amp_gain = fit_gain([m for m, _ in amps], [r for _, r in amps]) if amps else base.current
    return MeterGains(voltage=voltage, current=amp_gain)


def relative_error_pct(value: float, reference: float) -> float:
    """(value - reference)/reference in %, the way the paper's Table 1 quotes differences."""
    return 100.0 * (value - reference) / reference
