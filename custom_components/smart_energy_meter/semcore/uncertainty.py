"""How large an unexplained energy difference must be before it counts as theft.

Two modes:
- FIXED: the paper's rule, a fixed share of the line energy (2 %), with an absolute floor;
- UNCERTAINTY: z standard uncertainties of the window's balance, from the meters' gain and
  offset errors, reading noise, the cable-loss estimate and counter quantisation, plus the
  worst-case effect of the meters' timing (clock skew, read interval), with the same floor.

Meter errors quoted as "±x %" are bounds; treating them as uniform gives a standard uncertainty
of x/√3. A fixed gain error does not average out over windows, which is why it enters every
window in full rather than shrinking with the window length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

_SQRT3: Final = math.sqrt(3.0)


class ThresholdMode(StrEnum):
    """How a window's threshold is set: fixed share, or its uncertainty."""

    FIXED = "fixed"
    UNCERTAINTY = "uncertainty"


@dataclass(frozen=True, slots=True)
class UncertaintyModel:
    """Error budget of one line/house pair. Defaults suit two uncalibrated PZEM-004T.

    meter_gain_pct     bound of each meter's steady gain error (datasheet 0.5 %; 1 % default
                       because units off by ~0.9 % are common, see the paper's Table 1)
    gain_match_pct     standard uncertainty of the house/line gain ratio once the pair has been
                       gain-matched during commissioning; replaces the two per-meter terms
    meter_offset_w     bound of each meter's zero error and resolution at low load
    reading_noise_pct  bound of the random error of a single reading (averages over a window)
    resistance_pct     standard uncertainty of the cable resistance (length, temperature)
    max_skew_s         largest time offset between the two meters' clocks and reads (the engine
                       adds the read interval itself)
    counter_resolution_wh  step of the energy counters (PZEM: 1 Wh), used with counter windows
    z                  coverage factor of the uncertainty mode
    fixed_pct          threshold of the fixed mode (the paper's 2 %)
    floor_w            absolute floor, as an average power over the window
    clear_ratio        a window counts as clean below clear_ratio x threshold (hysteresis)
    """

    mode: ThresholdMode = ThresholdMode.UNCERTAINTY
    meter_gain_pct: float = 1.0
    gain_match_pct: float | None = None
    meter_offset_w: float = 0.5
    reading_noise_pct: float = 0.5
    resistance_pct: float = 15.0
    max_skew_s: float = 1.0
    counter_resolution_wh: float = 1.0
    z: float = 3.0
    fixed_pct: float = 2.0
    floor_w: float = 3.0
    clear_ratio: float = 0.5

    def __post_init__(self) -> None:
        for name in (
            "meter_gain_pct",
            "meter_offset_w",
            "reading_noise_pct",
            "resistance_pct",
            "max_skew_s",
            "counter_resolution_wh",
            "z",
            "fixed_pct",
            "floor_w",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.gain_match_pct is not None and not (
            math.isfinite(self.gain_match_pct) and self.gain_match_pct >= 0
        ):
            raise ValueError(f"gain_match_pct must be >= 0, got {self.gain_match_pct}")
        if not 0 < self.clear_ratio < 1:
            raise ValueError(f"clear_ratio must be within (0, 1), got {self.clear_ratio}")


@dataclass(frozen=True, slots=True)
class WindowQuantities:
    """What the threshold of one window depends on.

    edge_step_w: largest change of the line power between the window's two edges (within
    ±max_skew_s of each); a clock skew τ moves τ x that much energy across the window.
    steps_w: sum of the load steps inside the window; each meter sees a step only at its next
    read, so each step can move up to read_interval_s x its size between the two meters.
    """

    duration_s: float
    line_wh: float
    house_wh: float
    cable_loss_wh: float
    line_samples: int
    house_samples: int
    edge_step_w: float = 0.0
    steps_w: float = 0.0
    read_interval_s: float = 0.0
    from_counters: bool = False


@dataclass(frozen=True, slots=True)
class Threshold:
    """Levels (Wh) for one window's unexplained energy D, and their parts.

    level_wh is the error budget (z x sigma, or the fixed share), timing_wh the worst case of the
    skew and read-timing effects, floor_wh the absolute floor. D above trigger_wh is an excess
    (below -trigger_wh a deficit); |D| below clear_wh is clean. The timing allowance widens the
    trigger and narrows the clear band: a window with big steps near its edges is inconclusive.
    """

    trigger_wh: float
    clear_wh: float
    level_wh: float
    timing_wh: float
    floor_wh: float
    sigma_wh: float


def balance_sigma_wh(model: UncertaintyModel, q: WindowQuantities) -> float:
    """Combined standard uncertainty (Wh) of line - house - cable loss over one window."""
    hours = q.duration_s / 3600.0
    if model.gain_match_pct is not None:
        gain = (model.gain_match_pct / 100.0 * q.line_wh) ** 2
    else:
        u = model.meter_gain_pct / 100.0 / _SQRT3
        gain = (u * q.line_wh) ** 2 + (u * q.house_wh) ** 2
    offset = 2.0 * (model.meter_offset_w / _SQRT3 * hours) ** 2
    u_noise = model.reading_noise_pct / 100.0 / _SQRT3
    noise = (u_noise * q.line_wh) ** 2 / max(q.line_samples, 1) + (u_noise * q.house_wh) ** 2 / max(
        q.house_samples, 1
    )
    cable = (model.resistance_pct / 100.0 * q.cable_loss_wh) ** 2
    # Each counter difference is off by up to one step (two floored reads): triangular
    # distribution, variance step²/6, for each of the two meters.
    quantisation = 2.0 * model.counter_resolution_wh**2 / 6.0 if q.from_counters else 0.0
    return math.sqrt(gain + offset + noise + cable + quantisation)


def window_threshold(model: UncertaintyModel, q: WindowQuantities) -> Threshold:
    """Trigger and clear levels of one window in the model's mode (symmetric for deficits)."""
    sigma = balance_sigma_wh(model, q)
    timing = (model.max_skew_s * q.edge_step_w + q.read_interval_s * q.steps_w) / 3600.0
    floor = model.floor_w * q.duration_s / 3600.0
    if model.mode is ThresholdMode.FIXED:
        level = model.fixed_pct / 100.0 * q.line_wh
    else:
        level = model.z * sigma
    return Threshold(
        trigger_wh=max(level + timing, floor),
        clear_wh=model.clear_ratio * max(level, floor) - timing,
        level_wh=level,
        timing_wh=timing,
        floor_wh=floor,
        sigma_wh=sigma,
    )
