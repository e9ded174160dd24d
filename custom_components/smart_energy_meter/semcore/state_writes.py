"""When a measurement's state is written: the recorder keeps every state, and a meter read every
second would otherwise fill a database with about 400,000 rows per pair per day.

`Policy.SIGNIFICANT` (the default) writes a reading at once when it moved by its quantity's
deadband since the value last written, and otherwise keeps it pending until the next heartbeat
(once a minute, the caller's timer), so a slow drift still reaches the state within a minute.
`Policy.EVERY_READING` writes every change.
Availability, verdicts and the relay are never held back (that is the entities' business).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Policy(StrEnum):
    """How often a measurement's state is written."""

    SIGNIFICANT = "significant"
    EVERY_READING = "every_reading"


@dataclass(frozen=True, slots=True)
class Deadband:
    """A change is significant when it reaches `absolute`, or `relative` of the value last
    written (the smaller of the two counts: a 5 % step of a 20 W lamp is 1 W)."""

    absolute: float
    relative: float = 0.0

    def significant(self, written: float, value: float) -> bool:
        """True when `value` differs enough from the value last `written`."""
        change = abs(value - written)
        return change >= self.absolute or (
            self.relative > 0 and change >= self.relative * abs(written)
        )


class StateGate:
    """Decides, reading by reading, whether a measurement's state is written now. The gate only
    ever holds a value back; the caller writes what it is told to."""

    __slots__ = ("_deadband", "_pending", "_written")

    def __init__(self, deadband: Deadband) -> None:
        self._deadband = deadband
        self._written: float | None = None
        self._pending = False

    @property
    def pending(self) -> bool:
        """True when a value was held back since the last write."""
        return self._pending

    def offer(self, value: float) -> bool:
        """A new value: True when it is to be written now."""
        written = self._written
        if written is None:
            return self.wrote(value)
        if value == written:
            self._pending = False
            return False
        if self._deadband.significant(written, value):
            return self.wrote(value)
        self._pending = True
        return False

    def wrote(self, value: float | None) -> bool:
        """Record that `value` was written (None: the state became unavailable)."""
        self._written = value
        self._pending = False
        return True


# The deadband of each quantity under `Policy.SIGNIFICANT`, by what a user can tell apart on a
# card and above a PZEM-004T's reading-to-reading scatter: a power change of 5 % or 10 W, 2 V
# (under 1 % of the mains), 5 % or 50 mA, 0.02 of power factor, 0.1 Hz, a point of the theft
# percentage.
POWER_DEADBAND: Final = Deadband(10.0, 0.05)
VOLTAGE_DEADBAND: Final = Deadband(2.0)
CURRENT_DEADBAND: Final = Deadband(0.05, 0.05)
POWER_FACTOR_DEADBAND: Final = Deadband(0.02)
FREQUENCY_DEADBAND: Final = Deadband(0.1)
PERCENT_DEADBAND: Final = Deadband(1.0)
# Energy in Wh: a register moves by 1 Wh steps, 24,000 a day at 1 kW; 10 Wh at once, the rest
# at the heartbeat, which also writes the last value of each statistics period.
ENERGY_DEADBAND: Final = Deadband(10.0)
# Under `Policy.EVERY_READING`: any change is written.
EVERY_CHANGE: Final = Deadband(0.0)
