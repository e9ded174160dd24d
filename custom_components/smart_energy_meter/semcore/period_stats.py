"""Mean, minimum and maximum of a measurement over statistics periods, from every reading.

The recorder compiles its statistics from the states it stored; when states are written only
on significant changes, those statistics would be of the written states. This accumulator sees
every reading instead: each value counts for the time until the next reading (or until the
meter became unavailable), split at period boundaries, so a period's mean is time-weighted over
what the meter measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

# Seconds: Home Assistant's short-term (5-minute) and long-term (hourly) statistics periods.
SHORT_TERM_S: Final = 300.0
HOURLY_S: Final = 3600.0


@dataclass(frozen=True, slots=True)
class PeriodSummary:
    """One period's figures; `covered` is the number of seconds with a reading in effect."""

    start: float
    mean: float
    min: float
    max: float
    covered: float


class PeriodStats:
    """Time-weighted statistics of one measurement for periods of `period` seconds (aligned to
    the Unix epoch, as Home Assistant's are to UTC)."""

    __slots__ = ("_held", "_held_at", "_max", "_min", "_period", "_start", "_sum", "_time")

    def __init__(self, period: float) -> None:
        self._period = period
        self._held: float | None = None
        self._held_at = 0.0
        self._start: float | None = None
        self._sum = 0.0
        self._time = 0.0
        self._min = math.inf
        self._max = -math.inf

    def add(self, value: float | None, now: float) -> list[PeriodSummary]:
        """A reading (None: no current reading) at Unix time `now`; returns the periods that
        ended before it."""
        closed = self._advance(now)
        self._held = value
        self._held_at = max(self._held_at, now)
        if value is not None:
            if self._start is None:
                self._start = self._period_start(now)
            self._min = min(self._min, value)
            self._max = max(self._max, value)
        return closed

    def close(self, now: float) -> list[PeriodSummary]:
        """The periods that ended by `now`, the value in effect counted up to then."""
        return self._advance(now)

    def _period_start(self, moment: float) -> float:
        return moment - moment % self._period

    def _advance(self, now: float) -> list[PeriodSummary]:
        closed: list[PeriodSummary] = []
        if now < self._held_at:
            return closed  # a clock step back: the time already counted stays counted
        while self._start is not None and now >= self._start + self._period:
            end = self._start + self._period
            self._count(end)
            if self._time > 0:
                closed.append(
                    PeriodSummary(
                        self._start, self._sum / self._time, self._min, self._max, self._time
                    )
                )
            self._sum = self._time = 0.0
            held = self._held
            # The value in effect carries into the next period, and is its first extreme.
            self._min = held if held is not None else math.inf
            self._max = held if held is not None else -math.inf
            self._start = end if held is not None else None
        self._count(now)
        return closed

    def _count(self, until: float) -> None:
        if self._held is not None and until > self._held_at:
            self._sum += self._held * (until - self._held_at)
            self._time += until - self._held_at
        self._held_at = max(self._held_at, until)
