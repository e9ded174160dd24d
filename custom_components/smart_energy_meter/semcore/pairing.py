"""Which readings of a pair's two meters were taken together, in one poll cycle of their node.

A node reads the two meters of a pair one after the other in each poll cycle and publishes each
reading as a message of its own (the paper's per-value topics too: one value a message). Between
the two messages the newest reading of one meter is of this cycle and the other's of the one
before: a figure made of those two mixes what the meters measured a cycle apart, and at a load
step it is far off (a second lamp switched on reads +50 %, four of five switched off -400 %).

`CyclePairing` hands out the two readings of one cycle once both are in, each reading once.
Two reads belong to one cycle when they were taken at most `cycle_tolerance` apart: half the
poll interval, since reads of consecutive cycles are a whole interval apart, so only the
partner of the same cycle is that close. A reading whose partner never comes is given up when
the other meter's reading of a later cycle arrives; readings of different cycles are never
paired.

Pure Python: no Home Assistant import, no clock of its own.
"""

from __future__ import annotations

from typing import Final, Protocol

from .protocol import Role

_OTHER: Final = {Role.LINE: Role.HOUSE, Role.HOUSE: Role.LINE}


class Stamped(Protocol):
    """A reading with the time it was taken (s)."""

    @property
    def ts(self) -> float:
        """When the meter was read."""
        ...


def cycle_tolerance(interval: float | None, cap: float) -> float:
    """Seconds two reads may be apart to be of one poll cycle: half the poll `interval`, and
    never more than `cap` (the whole of it when the interval is unknown)."""
    if interval is None or not interval > 0:
        return cap
    return min(cap, interval / 2.0)


class CyclePairing[R: Stamped]:
    """The newest reading of each meter, and whether it still waits for its partner."""

    def __init__(self) -> None:
        self._latest: dict[Role, R | None] = dict.fromkeys(Role)
        self._waiting: dict[Role, bool] = dict.fromkeys(Role, False)

    def latest(self, role: Role) -> R | None:
        """The newest reading of `role`'s meter, paired or not."""
        return self._latest[role]

    def add(self, role: Role, reading: R, tolerance: float) -> tuple[R, R] | None:
        """Take a reading of `role`'s meter; when it completes its cycle, answer the cycle's
        line and house readings (in that order), else None: it waits for its partner."""
        other = _OTHER[role]
        partner = self._latest[other]
        self._latest[role] = reading
        if (
            partner is not None
            and self._waiting[other]
            and abs(reading.ts - partner.ts) <= tolerance
        ):
            self._waiting[role] = self._waiting[other] = False
            return (reading, partner) if role is Role.LINE else (partner, reading)
        self._waiting[role] = True
        if partner is not None and partner.ts < reading.ts - tolerance:
            self._waiting[other] = False  # its cycle went by without this meter's reading
        return None

    def clear(self) -> None:
        """Forget every reading (a meter went unavailable)."""
        self._latest = dict.fromkeys(Role)
        self._waiting = dict.fromkeys(Role, False)
