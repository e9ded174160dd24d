"""Theft detection for one meter pair: the paper's instantaneous mismatch rule, debounced.

A pair is a line meter (on the feeder before the house) and the house's own meter. The paper
flags theft when line power exceeds house power by more than 2 %:

    mismatch % = (P_line - P_house) / P_line * 100

`PairDetector` is fed each meter's power with the time of the read. It evaluates the two
readings of one poll cycle once both are in (`semcore/pairing.py`: taken at most half the poll
interval, and at most `max_skew`, apart), never a new reading of one meter with the other's
reading of the cycle before; until the partner comes, the last evaluation stands. It skips
evaluation below a minimum line load (where two meters' small absolute errors are large
percentages), and reports a `Transition` only when the verdict has held for `debounce`
seconds. It clears below `threshold - hysteresis`, with the same debounce.

Pure Python: no Home Assistant import, no clock of its own (every call carries its timestamp).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from .pairing import CyclePairing, cycle_tolerance
from .protocol import Role

DEFAULT_THRESHOLD: Final = 2.0
DEFAULT_DEBOUNCE: Final = 10.0
# The paper's house 2 reads 1.54 % in normal operation: a theft flag raised there must clear
# once the bypass is removed, so the clear level (threshold - hysteresis) stays above it.
DEFAULT_HYSTERESIS: Final = 0.25
DEFAULT_MIN_LOAD: Final = 10.0
DEFAULT_MAX_SKEW: Final = 2.0
# Evaluated cycles further apart than this many poll intervals (one cycle missed is tolerated;
# max_skew when the interval is unknown) do not continue a pending change of verdict: it must be
# seen again from the start.
GAP_INTERVALS: Final = 2.5


@dataclass(frozen=True, slots=True)
class DetectionOptions:
    """Tunables of the instantaneous rule.

    threshold: mismatch in percent above which a pair is suspicious.
    debounce: seconds the verdict must hold before it is reported (both directions).
    hysteresis: percentage points below the threshold needed to clear.
    min_load: line power in W below which the mismatch is not evaluated.
    max_skew: seconds between the line and house reads beyond which they are not paired (the
        node's poll cycle narrows it to half its interval).
    """

    threshold: float = DEFAULT_THRESHOLD
    debounce: float = DEFAULT_DEBOUNCE
    hysteresis: float = DEFAULT_HYSTERESIS
    min_load: float = DEFAULT_MIN_LOAD
    max_skew: float = DEFAULT_MAX_SKEW

    def __post_init__(self) -> None:
        values = (self.threshold, self.debounce, self.hysteresis, self.min_load, self.max_skew)
        if not all(math.isfinite(value) for value in values):
            raise ValueError("detection options must be finite numbers")
        if not 0 < self.threshold <= 100:
            raise ValueError("threshold must be within 0..100 %")
        if self.debounce < 0 or self.min_load <= 0 or self.max_skew < 0:
            raise ValueError("debounce and max_skew must be >= 0 and min_load > 0")
        if not 0 <= self.hysteresis < self.threshold:
            raise ValueError("hysteresis must be >= 0 and below the threshold")

    @property
    def clear_below(self) -> float:
        """Mismatch in percent under which a flagged pair clears."""
        return self.threshold - self.hysteresis


class NotEvaluable(StrEnum):
    """Why a mismatch could not be computed."""

    NO_LINE = "no_line"  # no line reading yet
    NO_HOUSE = "no_house"  # no house reading yet
    SKEW = "skew"  # the other meter's newest reading is of another poll cycle
    BELOW_MIN_LOAD = "below_min_load"


# Why a reading waiting for its partner is not evaluated: said only until a cycle of both
# meters was evaluated, never over an evaluation.
_WAITING: Final = frozenset({NotEvaluable.NO_LINE, NotEvaluable.NO_HOUSE, NotEvaluable.SKEW})


class TheftEvent(StrEnum):
    """A change of verdict."""

    DETECTED = "theft_detected"
    CLEARED = "theft_cleared"


@dataclass(frozen=True, slots=True)
class Reading:
    """One meter's power, and when it was read (seconds, any monotonic-enough clock)."""

    power: float
    ts: float


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The latest pairing of line and house: a mismatch, or the reason there is none."""

    at: float
    mismatch: float | None
    reason: NotEvaluable | None
    line_power: float | None
    house_power: float | None


@dataclass(frozen=True, slots=True)
class Transition:
    """The verdict changed; the values are those of the evaluation that changed it."""

    event: TheftEvent
    at: float
    mismatch: float
    line_power: float
    house_power: float


def mismatch_percent(line_power: float, house_power: float) -> float:
    """Return the paper's theft indicator, (P_line - P_house) / P_line * 100."""
    if line_power <= 0:
        raise ValueError("line power must be positive")
    return (line_power - house_power) / line_power * 100.0


class PairDetector:
    """Debounced theft verdict for one line/house meter pair."""

    def __init__(self, options: DetectionOptions | None = None) -> None:
        self._options = options or DetectionOptions()
        self._pairing: CyclePairing[Reading] = CyclePairing()
        self._intervals: dict[Role, float | None] = dict.fromkeys(Role)
        self._theft = False
        self._since: float | None = None  # start of a pending change of verdict
        self._evaluation: Evaluation | None = None

    @property
    def options(self) -> DetectionOptions:
        """The options in force."""
        return self._options

    @property
    def theft(self) -> bool:
        """The current (debounced) verdict."""
        return self._theft

    @property
    def evaluation(self) -> Evaluation | None:
        """The most recent evaluation, None before any reading arrived."""
        return self._evaluation

    @property
    def mismatch(self) -> float | None:
        """The latest instantaneous mismatch in percent, None when not evaluable."""
        return self._evaluation.mismatch if self._evaluation else None

    @property
    def pending_since(self) -> float | None:
        """When the current candidate change of verdict started, if one is pending."""
        return self._since

    def reconfigure(self, options: DetectionOptions) -> None:
        """Apply new options: the verdict carries over, a pending change is judged afresh."""
        self._options = options
        self._since = None

    def update_line(
        self, power: float, ts: float, interval: float | None = None
    ) -> Transition | None:
        """Feed a line-meter reading; return a transition if the verdict changed.

        interval: seconds between the polls of the meter's node, when known.
        """
        return self._update(Role.LINE, Reading(power, ts), interval)

    def update_house(
        self, power: float, ts: float, interval: float | None = None
    ) -> Transition | None:
        """Feed a house-meter reading; return a transition if the verdict changed.

        interval: seconds between the polls of the meter's node, when known.
        """
        return self._update(Role.HOUSE, Reading(power, ts), interval)

    def interrupt(self) -> None:
        """A meter went unavailable: drop both readings and restart any pending debounce.

        The verdict itself is kept; nothing is known about the time without data.
        """
        self._pairing.clear()
        self._since = None
        self._evaluation = None

    @property
    def _interval(self) -> float | None:
        """The poll interval of the faster meter: the one whose cycles must not be mixed."""
        known = [interval for interval in self._intervals.values() if interval is not None]
        return min(known) if known else None

    def _update(self, role: Role, reading: Reading, interval: float | None) -> Transition | None:
        self._intervals[role] = interval
        tolerance = cycle_tolerance(self._interval, self._options.max_skew)
        cycle = self._pairing.add(role, reading, tolerance)
        if cycle is None:
            self._wait(reading)
            return None
        return self._evaluate(self._pair(*cycle))

    def _wait(self, reading: Reading) -> None:
        """A reading waits for its partner: the last evaluation stands. Before the first
        cycle was evaluated, the evaluation says why there is none."""
        if self._evaluation is not None and self._evaluation.reason not in _WAITING:
            return
        line, house = self._pairing.latest(Role.LINE), self._pairing.latest(Role.HOUSE)
        if line is None:
            reason = NotEvaluable.NO_LINE
        elif house is None:
            reason = NotEvaluable.NO_HOUSE
        else:
            reason = NotEvaluable.SKEW
        self._evaluation = Evaluation(
            reading.ts,
            None,
            reason,
            line.power if line else None,
            house.power if house else None,
        )

    def _evaluate(self, evaluation: Evaluation) -> Transition | None:
        previous = self._evaluation
        self._evaluation = evaluation
        if (
            self._since is not None
            and previous is not None
            and evaluation.at - previous.at > self._gap_limit
        ):
            self._since = None  # cycles went by unevaluated: the verdict was not seen to hold
        if evaluation.mismatch is None:
            # No verdict without data: a pending change must be seen again from the start.
            self._since = None
            return None
        mismatch = evaluation.mismatch
        wants_change = (
            mismatch < self._options.clear_below
            if self._theft
            else mismatch > self._options.threshold
        )
        if not wants_change:
            self._since = None
            return None
        if self._since is None or evaluation.at < self._since:  # a clock stepping back restarts
            self._since = evaluation.at
        if evaluation.at - self._since < self._options.debounce:
            return None
        self._since = None
        self._theft = not self._theft
        assert evaluation.line_power is not None
        assert evaluation.house_power is not None
        return Transition(
            TheftEvent.DETECTED if self._theft else TheftEvent.CLEARED,
            evaluation.at,
            mismatch,
            evaluation.line_power,
            evaluation.house_power,
        )

    @property
    def _gap_limit(self) -> float:
        interval = self._interval
        return self._options.max_skew if interval is None else GAP_INTERVALS * interval

    def _pair(self, line: Reading, house: Reading) -> Evaluation:
        at = max(line.ts, house.ts)
        if line.power < self._options.min_load:
            return Evaluation(at, None, NotEvaluable.BELOW_MIN_LOAD, line.power, house.power)
        return Evaluation(
            at, mismatch_percent(line.power, house.power), None, line.power, house.power
        )
