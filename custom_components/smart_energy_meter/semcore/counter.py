"""An energy counter that never runs backwards except on a real reset.

The PZEM's energy register only grows, except after a `reset_energy` command or when the
device is replaced. Home Assistant's `total_increasing` statistics read any drop as a meter
reset, so a glitch that reports a lower value would book a whole counter's worth of energy
twice. A drop is therefore accepted only right after a reset command, or when it lands near
zero (a replaced or factory-reset PZEM); any other drop is refused and the last good value
stays.

Pure Python: no Home Assistant import; every call carries its own time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

# A new or reset PZEM starts at 0 Wh; a few Wh may accumulate before the first publication.
NEAR_ZERO_WH: Final = 10.0
# How long after a reset command the next drop is taken as that reset.
RESET_WINDOW_S: Final = 120.0


class Verdict(StrEnum):
    """What happened to one reading."""

    FIRST = "first"
    INCREASE = "increase"
    UNCHANGED = "unchanged"
    RESET = "reset"
    REFUSED = "refused"


@dataclass(slots=True)
class EnergyCounter:
    """The accepted energy value of one meter, in Wh."""

    value: float | None = None
    _reset_until: float | None = None

    def expect_reset(self, now: float, window: float = RESET_WINDOW_S) -> None:
        """A reset command was sent at `now`: accept the next drop within `window` s."""
        self._reset_until = now + window

    def update(self, raw: float, now: float) -> Verdict:
        """Offer a reading; `value` holds the accepted energy afterwards."""
        if self.value is None:
            self.value = raw
            return Verdict.FIRST
        if raw == self.value:
            return Verdict.UNCHANGED
        if raw > self.value:
            self.value = raw
            return Verdict.INCREASE
        pending = self._reset_until is not None and now <= self._reset_until
        if pending or raw <= NEAR_ZERO_WH:
            self.value = raw
            self._reset_until = None
            return Verdict.RESET
        return Verdict.REFUSED
