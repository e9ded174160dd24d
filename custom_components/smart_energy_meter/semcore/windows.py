"""Windowed energy of one meter from its timestamped readings, and the line/house balance.

Readings are integrated with a zero-order hold: a reading's power is taken to last until the next
reading, for at most `max_hold_s` (a meter that stops answering leaves a gap instead of being
extrapolated). The time line is cut into fixed windows [k·T, (k+1)·T); each hold interval is
split across the windows it spans. Both meters of a pair are cut the same way, so their windows
compare like for like; a window counts only when it is fully covered.

The energy counter (PZEM: 1 Wh steps) is spread over the same intervals, for long windows where
its quantisation is small against the window's energy and its gap-free integration pays off.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import astuple, dataclass
from typing import Any

from .state import StateError, count, flag, mapping, number, optional_number, sequence, whole


@dataclass(slots=True)
class WindowTotals:
    """Integrals of one meter over one window."""

    energy_ws: float = 0.0  # ∫P dt from the power readings
    counter_wh: float = 0.0  # counter increments attributed to the window
    counter_valid: bool = True  # false when a counter reset or a missing counter touched it
    current_sq_as: float = 0.0  # ∫I² dt, for the cable loss
    covered_s: float = 0.0  # time covered by held readings
    samples: int = 0  # hold intervals that started in the window

    @property
    def energy_wh(self) -> float:
        """The power integral in Wh."""
        return self.energy_ws / 3600.0

    def as_list(self) -> list[Any]:
        """Stored form."""
        return list(astuple(self))

    @classmethod
    def from_list(cls, data: Any) -> WindowTotals:
        """Read the stored form (StateError if it is not one)."""
        energy, counter, valid, current_sq, covered, samples = sequence(data, "window", 6)
        return cls(
            energy_ws=number(energy, "window energy", minimum=0),
            counter_wh=number(counter, "window counter", minimum=0),
            counter_valid=flag(valid, "window counter validity"),
            current_sq_as=number(current_sq, "window current", minimum=0),
            covered_s=number(covered, "window coverage", minimum=0),
            samples=count(samples, "window samples"),
        )


@dataclass(frozen=True, slots=True)
class HeldReading:
    """A reading as the integrator holds it (already gain-corrected)."""

    ts: float
    power_w: float
    current_a: float
    energy_wh: float | None

    def as_list(self) -> list[float | None]:
        """Stored form."""
        return [self.ts, self.power_w, self.current_a, self.energy_wh]

    @classmethod
    def from_list(cls, data: Any) -> HeldReading:
        """Read the stored form (StateError if it is not one)."""
        ts, power, current, energy = sequence(data, "reading", 4)
        return cls(
            number(ts, "reading time", minimum=0),
            number(power, "reading power", minimum=0),
            number(current, "reading current", minimum=0),
            optional_number(energy, "reading energy", minimum=0),
        )


class MeterIntegrator:
    """Cuts one meter's held readings into fixed windows."""

    def __init__(self, window_s: float, max_hold_s: float) -> None:
        if not (window_s > 0 and max_hold_s > 0):
            raise ValueError("window and hold lengths must be > 0")
        self.window_s = window_s
        self.max_hold_s = max_hold_s
        self.last: HeldReading | None = None
        self._windows: dict[int, WindowTotals] = {}

    def index(self, ts: float) -> int:
        """Window index holding instant ts."""
        return math.floor(ts / self.window_s)

    def add(self, reading: HeldReading) -> None:
        """Integrate the previous reading up to this one, then hold this one."""
        prev = self.last
        self.last = reading
        if prev is None:
            return
        span = reading.ts - prev.ts
        if span <= 0 or span > self.max_hold_s:
            return  # a gap: nothing is known in between
        counter_delta: float | None = None
        if prev.energy_wh is not None and reading.energy_wh is not None:
            delta = reading.energy_wh - prev.energy_wh
            counter_delta = delta if delta >= 0 else None  # a drop is a reset: unknown here
        start, end = prev.ts, reading.ts
        w = self.index(start)
        first = True
        while start < end:
            stop = min(end, (w + 1) * self.window_s)
            part = stop - start
            totals = self._windows.get(w)
            if totals is None:
                totals = self._windows[w] = WindowTotals()
            totals.energy_ws += prev.power_w * part
            totals.current_sq_as += prev.current_a * prev.current_a * part
            totals.covered_s += part
            if counter_delta is None:
                totals.counter_valid = False
            else:
                totals.counter_wh += counter_delta * part / span
            if first:
                totals.samples += 1
                first = False
            start = stop
            w += 1

    def pop(self, index: int) -> WindowTotals:
        """Hand over (and forget) a window's totals; an untouched window is empty."""
        return self._windows.pop(index, None) or WindowTotals(counter_valid=False)

    def first_index(self) -> int | None:
        """Lowest window index with data, if any."""
        return min(self._windows) if self._windows else None

    def drop_before(self, index: int) -> None:
        """Forget windows that were already closed (late data for them is ignored)."""
        for w in [w for w in self._windows if w < index]:
            del self._windows[w]

    def as_dict(self) -> dict[str, Any]:
        """Stored form: the held reading and the open windows' totals."""
        return {
            "last": None if self.last is None else self.last.as_list(),
            "windows": [[w, *totals.as_list()] for w, totals in sorted(self._windows.items())],
        }

    @classmethod
    def from_dict(cls, data: Any, window_s: float, max_hold_s: float) -> MeterIntegrator:
        """Continue from the stored form, cut into the same windows (StateError if invalid)."""
        data = mapping(data, "meter")
        integrator = cls(window_s, max_hold_s)
        last = data.get("last")
        integrator.last = None if last is None else HeldReading.from_list(last)
        for item in sequence(data.get("windows"), "open windows"):
            w, *totals = sequence(item, "open window", 7)
            integrator._windows[whole(w, "window index")] = WindowTotals.from_list(totals)
        return integrator


class PowerHistory:
    """Recent line power readings, to bound the timing errors of a window's balance.

    Two timing effects move energy between the meters' views of a window:
    - a clock skew τ (the house stamps its reads τ late) shifts the whole house view: the
      window's error is τ x (P(end) - P(start)), i.e. only the edges matter;
    - each meter sees a load step only at its next read, up to one read interval Δ later, and
      the two meters' delays differ per step: each step of size ΔP can put Δ x ΔP on either
      side, in any window the shifted step lands in (up to τ + Δ outside the line's view).
    """

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self._readings: deque[tuple[float, float]] = deque()

    def as_list(self) -> list[list[float]]:
        """Stored form: the kept readings, oldest first."""
        return [[ts, power] for ts, power in self._readings]

    @classmethod
    def from_list(cls, data: Any, keep_s: float) -> PowerHistory:
        """Continue from the stored form (StateError if invalid)."""
        history = cls(keep_s)
        previous = -math.inf
        for item in sequence(data, "power history"):
            ts, power = sequence(item, "power reading", 2)
            ts = number(ts, "power reading time", minimum=0)
            if ts < previous:
                raise StateError("power history: not in time order")
            previous = ts
            history._readings.append((ts, number(power, "power reading power", minimum=0)))
        return history

    def add(self, ts: float, power_w: float) -> None:
        """Keep one reading (time, W); forget those older than `keep_s` before it."""
        self._readings.append((ts, power_w))
        while self._readings[0][0] < ts - self.keep_s:
            self._readings.popleft()

    def around(self, edge: float, reach_s: float, max_hold_s: float) -> tuple[float, float] | None:
        """(min, max) of the line power in force within ±reach_s of an edge."""
        low, high = edge - reach_s, edge + reach_s
        values = [p for t, p in self._readings if low < t <= high]
        # The reading in force at the start of the span counts too, if it was still held.
        before = [p for t, p in self._readings if low - max_hold_s <= t <= low]
        if before:
            values.append(before[-1])
        if not values:
            return None
        return min(values), max(values)

    def edge_step_w(self, start: float, end: float, reach_s: float, max_hold_s: float) -> float:
        """Largest possible change of line power between the two edges of a window."""
        a = self.around(start, reach_s, max_hold_s)
        b = self.around(end, reach_s, max_hold_s)
        if a is None or b is None:
            return 0.0
        return max(b[1] - a[0], a[1] - b[0])

    def steps_w(self, start: float, end: float, noise: float, resolution_w: float) -> float:
        """Sum of the load steps seen in (start, end]: changes between consecutive readings
        larger than what reading noise (a fraction) and resolution alone can produce."""
        total = 0.0
        previous: float | None = None
        for t, p in self._readings:
            if previous is not None and start < t <= end:
                change = abs(p - previous)
                if change > 2.0 * noise * max(p, previous) + resolution_w:
                    total += change
            previous = p
        return total


def mismatch_pct(line: float, house: float) -> float | None:
    """The paper's indicator: (line - house)/line in %; undefined without line power."""
    if line <= 0:
        return None
    return 100.0 * (line - house) / line
