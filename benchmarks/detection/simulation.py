"""Synthetic line/house meter readings: loads, service cable, theft and two imperfect PZEMs.

Electrical model, per instant: the house draws P_h (apparent power S_h), a thief draws P_t
behind the house meter (same cable, so the line meter sees it); the service cable of loop
resistance R(T) carries I = (S_h + P_t)/V and loses I^2*R. The line meter, at the feeder end, sees
V, I and P_h + P_t + I^2*R; the house meter sees V - I*R, its own current and P_h.

Meter model (PZEM-004T): a steady gain error per quantity, a steady power offset, a random error
per reading, the device's resolution (0.1 V, 1 mA, 0.1 W, 1 Wh) and its starting current
(nothing below 20 mA). Readings come every `interval` seconds; the house read follows the line
read by `read_gap` seconds (same node, same bus), and its clock may be off by a skew.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from custom_components.smart_energy_meter.semcore.cable_loss import CableSpec

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Steps:
    """A piecewise-constant function of time: value[i] holds from times[i] on."""

    times: list[float]
    values: list[float]

    def at(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t) - 1
        return self.values[i] if i >= 0 else self.values[0]


def constant(value: float) -> Steps:
    return Steps([0.0], [value])


def add(a: Steps, b: Steps) -> Steps:
    """Pointwise sum of two step functions."""
    times = sorted(set(a.times) | set(b.times))
    return Steps(times, [a.at(t) + b.at(t) for t in times])


@dataclass(frozen=True, slots=True)
class Appliance:
    """Switches on at random (mean gap), stays on for a random time (mean), draws power_w."""

    power_w: float
    mean_gap_s: float
    mean_on_s: float
    pf: float = 1.0


# A household with an EV charger and electric cooking: from a ~60 W base to ~12 kW.
HOUSEHOLD: tuple[Appliance, ...] = (
    Appliance(120.0, 1800.0, 900.0, 0.85),  # fridge compressor
    Appliance(60.0, 600.0, 1200.0),  # lights
    Appliance(2000.0, 5400.0, 180.0),  # kettle
    Appliance(2200.0, 14400.0, 1200.0),  # washing machine heater
    Appliance(3000.0, 10800.0, 1800.0),  # oven
    Appliance(1500.0, 3600.0, 600.0, 0.9),  # heat pump
    Appliance(7000.0, 43200.0, 7200.0, 0.98),  # EV charger
    Appliance(800.0, 2400.0, 120.0, 0.7),  # microwave
)


def appliance_load(
    rng: random.Random,
    duration_s: float,
    base_w: float,
    appliances: Sequence[Appliance] = HOUSEHOLD,
    cap_w: float | None = None,
) -> tuple[Steps, Steps]:
    """Total active power (W) and apparent power (VA) as step functions."""
    events: list[tuple[float, float, float]] = []  # (time, d_active, d_apparent)
    for app in appliances:
        t = rng.expovariate(1.0 / app.mean_gap_s)
        while t < duration_s:
            on = max(5.0, rng.expovariate(1.0 / app.mean_on_s))
            events.append((t, app.power_w, app.power_w / app.pf))
            events.append((t + on, -app.power_w, -app.power_w / app.pf))
            t += on + rng.expovariate(1.0 / app.mean_gap_s)
    events.sort()
    times, active, apparent = [0.0], [base_w], [base_w]
    p, s = base_w, base_w
    for t, dp, ds in events:
        if t >= duration_s:
            break
        p += dp
        s += ds
        # Apparent powers add as if in phase: a slight overestimate of the current.
        scale = min(1.0, cap_w / p) if cap_w is not None and p > 0 else 1.0
        times.append(t)
        active.append(max(p, base_w) * scale)
        apparent.append(max(s, base_w) * scale)
    return Steps(times, active), Steps(times, apparent)


def level_steps(
    rng: random.Random,
    duration_s: float,
    low_w: float,
    high_w: float,
    min_s: float,
    max_s: float,
) -> Steps:
    """Load jumping between log-uniform levels in [low, high] every min_s..max_s seconds."""
    times, values = [], []
    t = 0.0
    while t < duration_s:
        times.append(t)
        values.append(math.exp(rng.uniform(math.log(low_w), math.log(high_w))))
        t += rng.uniform(min_s, max_s)
    return Steps(times, values)


def cable_resistance(spec: CableSpec, temperature: Steps) -> Steps:
    """The cable's loop resistance following its conductor temperature."""
    values = [
        CableSpec(spec.length_m, spec.cross_section_mm2, spec.conductor, t).resistance_ohm
        for t in temperature.values
    ]
    return Steps(temperature.times, values)


def slow_walk(
    rng: random.Random, duration_s: float, start: float, step: float, low: float, high: float
) -> Steps:
    """A bounded random walk, one step a minute (grid voltage, cable temperature)."""
    times, values = [], []
    v, t = start, 0.0
    while t < duration_s:
        times.append(t)
        values.append(v)
        v = min(high, max(low, v + rng.uniform(-step, step)))
        t += 60.0
    return Steps(times, values)


@dataclass(frozen=True, slots=True)
class MeterModel:
    """Steady errors of one PZEM (fractions / W) and its per-reading random error bound."""

    gain_v: float = 0.0
    gain_i: float = 0.0
    gain_p: float = 0.0
    offset_w: float = 0.0
    noise: float = 0.0

    @staticmethod
    def drawn(rng: random.Random, gain: float, offset_w: float, noise: float) -> MeterModel:
        return MeterModel(
            rng.uniform(-gain, gain),
            rng.uniform(-gain, gain),
            rng.uniform(-gain, gain),
            rng.uniform(-offset_w, offset_w),
            noise,
        )


STARTING_CURRENT_A = 0.02


@dataclass(slots=True)
class MeterRead:
    """What a meter published: values, or available=False (the PZEM did not answer)."""

    ts: float
    available: bool
    voltage_v: float = 0.0
    current_a: float = 0.0
    power_w: float = 0.0
    energy_wh: float = 0.0


@dataclass(slots=True)
class _Counter:
    wh: float = 0.0
    last: float | None = None

    def advance(self, ts: float, power_w: float) -> float:
        if self.last is not None:
            self.wh += power_w * (ts - self.last) / 3600.0
        self.last = ts
        return float(math.floor(self.wh))


@dataclass
class World:
    """Everything that happens at the pair over the simulated time."""

    duration_s: float
    house_load: Steps  # active power (W)
    house_va: Steps  # apparent power (VA): the current is VA / V
    voltage: Steps
    resistance: Steps  # true loop resistance of the service cable (ohm) over time
    theft_share: Steps  # thief's share of the line power (0..1) over time
    line_meter: MeterModel
    house_meter: MeterModel
    skew: Callable[[float], float] = lambda _t: 0.0
    house_offline: list[tuple[float, float]] = field(default_factory=list)
    line_offline: list[tuple[float, float]] = field(default_factory=list)
    interval_s: float = 1.0
    read_gap_s: float = 0.05
    start_s: float = 1_764_072_000.0  # readings carry Unix-like timestamps


def _within(intervals: Sequence[tuple[float, float]], t: float) -> bool:
    return any(a <= t < b for a, b in intervals)


def _state(world: World, t: float) -> tuple[float, float, float, float, float, float]:
    """(V_line, I_line, P_line, V_house, I_house, P_house) true values at time t."""
    p_h = world.house_load.at(t)
    s_h = world.house_va.at(t)
    share = world.theft_share.at(t)
    p_t = p_h * share / (1.0 - share) if share > 0 else 0.0
    v = world.voltage.at(t)
    r = world.resistance.at(t)
    i_line = (s_h + p_t) / v
    v_house = v - i_line * r
    i_house = s_h / v_house
    return v, i_line, p_h + p_t + i_line * i_line * r, v_house, i_house, p_h


def _read(
    model: MeterModel,
    rng: random.Random,
    counter: _Counter,
    ts: float,
    v: float,
    i: float,
    p: float,
) -> MeterRead:
    noise = model.noise
    u = rng.uniform
    volts = v * (1.0 + model.gain_v) * (1.0 + u(-noise, noise))
    if i < STARTING_CURRENT_A:
        amps = watts = 0.0
    else:
        amps = i * (1.0 + model.gain_i) * (1.0 + u(-noise, noise))
        watts = max(0.0, p * (1.0 + model.gain_p) * (1.0 + u(-noise, noise)) + model.offset_w)
    energy = counter.advance(ts, watts)
    return MeterRead(ts, True, round(volts, 1), round(amps, 3), round(watts, 1), energy)


def readings(world: World, seed: int) -> Iterator[tuple[bool, MeterRead]]:
    """(is_line, reading) in publication order for the whole simulated time."""
    rng = random.Random(seed)
    line_counter, house_counter = _Counter(), _Counter()
    n = int(world.duration_s / world.interval_s)
    start = world.start_s
    for k in range(n):
        t = k * world.interval_s
        if _within(world.line_offline, t):
            yield True, MeterRead(start + t, False)
        else:
            v, i, p, _, _, _ = _state(world, t)
            yield True, _read(world.line_meter, rng, line_counter, start + t, v, i, p)
        th = t + world.read_gap_s
        if _within(world.house_offline, th):
            yield False, MeterRead(start + th, False)
        else:
            # The house meter's clock runs `skew` ahead: its reading stamped th shows th - skew.
            _, _, _, vh, ih, ph = _state(world, th - world.skew(th))
            yield False, _read(world.house_meter, rng, house_counter, start + th, vh, ih, ph)
