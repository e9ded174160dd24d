"""A meter's energy total that never runs backwards, never jumps, and survives restarts.

The PZEM-004T's energy register counts Wh from 0 to 9,999.99 kWh and then starts again at 0;
it also drops after a `reset_energy` command or when the device is replaced. Home Assistant's
`total_increasing` statistics read a drop as a meter reset and a rise as energy used, so a
corrupt value would book a whole counter's worth of energy once or twice.

So the total shown is the register followed step by step: a step is believed only when the
meter could have measured it, at most its rated power over the time since the last believed
reading (a wrap counts as the step across it). A step no meter could make is refused and the
total stays; when the register goes on from the new value for `REBASE_CONFIRMATIONS` readings
(a replaced meter, a reset nobody asked for), the total continues from there without the jump.
Only a reset the user asked for makes the total drop, to the register's new value.

Times are wall-clock seconds: the state is stored and compared across restarts.
Pure Python: no Home Assistant import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from .protocol import ENERGY_WRAP_WH, POWER_RANGE

# The register's resolution and the readings' timing: steps this small are always believable.
SLACK_WH: Final = 10.0
# How long after a reset command the next drop is taken as that reset.
RESET_WINDOW_S: Final = 120.0
# Consecutive readings that must go on from an unbelievable value before it is followed.
REBASE_CONFIRMATIONS: Final = 3


class Verdict(StrEnum):
    """What happened to one reading."""

    FIRST = "first"
    INCREASE = "increase"
    UNCHANGED = "unchanged"
    WRAPPED = "wrapped"
    RESET = "reset"
    REBASED = "rebased"
    REFUSED = "refused"


def believable_wh(elapsed_s: float) -> float:
    """The most energy a meter can measure in `elapsed_s` seconds (at its rated power)."""
    return POWER_RANGE[1] * max(elapsed_s, 0.0) / 3600.0 + SLACK_WH


def step_wh(previous: float, raw: float) -> float:
    """Energy from register value `previous` to `raw`; a drop is taken as a wrap."""
    return raw - previous if raw >= previous else ENERGY_WRAP_WH - previous + raw


@dataclass(slots=True)
class EnergyCounter:
    """The energy total of one meter (`value`, Wh) and the register it follows."""

    value: float | None = None
    raw: float | None = None  # the register's last believed value
    at: float | None = None  # wall-clock time of that reading
    _reset_until: float | None = None
    # After an unbelievable register value: that value, the latest reading going on from it,
    # when that was read, and how many readings agree.
    _candidate: tuple[float, float, float, int] | None = None

    def expect_reset(self, now: float, window: float = RESET_WINDOW_S) -> None:
        """A reset command was sent at `now`: accept the next drop within `window` s."""
        self._reset_until = now + window

    def cancel_reset(self) -> None:
        """The node said the reset failed: a drop is judged like any other again."""
        self._reset_until = None

    def update(self, raw: float, now: float) -> Verdict:
        """Offer a register reading taken at `now`; `value` holds the total afterwards."""
        if self.value is None or self.raw is None or self.at is None:
            self.value, self.raw, self.at = raw, raw, now
            return Verdict.FIRST
        previous, elapsed = self.raw, now - self.at
        if raw == previous:
            self.at = now
            self._candidate = None
            return Verdict.UNCHANGED
        if raw < previous and self._reset_until is not None and now <= self._reset_until:
            self.value, self.raw, self.at = raw, raw, now
            self._reset_until = None
            self._candidate = None
            return Verdict.RESET
        step = step_wh(previous, raw)
        if step <= believable_wh(elapsed):
            self.value += step
            self.raw, self.at = raw, now
            self._candidate = None
            return Verdict.WRAPPED if raw < previous else Verdict.INCREASE
        return self._refuse(raw, now)

    def _refuse(self, raw: float, now: float) -> Verdict:
        first, agreeing = raw, 1
        if self._candidate is not None:
            start, latest, at, count = self._candidate
            if raw >= latest and raw - latest <= believable_wh(now - at):
                first, agreeing = start, count + 1
        if agreeing < REBASE_CONFIRMATIONS:
            self._candidate = (first, raw, now, agreeing)
            return Verdict.REFUSED
        # The register really is there now: follow it, booking what it counted since the jump
        # but not the jump itself.
        assert self.value is not None
        self.value += raw - first
        self.raw, self.at = raw, now
        self._candidate = None
        return Verdict.REBASED

    def as_dict(self) -> dict[str, Any]:
        """What is stored between runs (None before the first reading)."""
        return {"value": self.value, "raw": self.raw, "at": self.at}

    @classmethod
    def from_dict(cls, data: object) -> EnergyCounter:
        """A counter continued from `as_dict`; a fresh one when `data` is not such a record."""
        if not isinstance(data, dict):
            return cls()
        fields: list[float] = []
        for key in ("value", "raw", "at"):
            item = data.get(key)
            if isinstance(item, bool) or not isinstance(item, int | float):
                return cls()
            if not 0 <= item < math.inf:
                return cls()
            fields.append(float(item))
        value, raw, at = fields
        return cls(value, raw, at)
