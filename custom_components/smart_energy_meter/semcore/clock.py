"""A node's clock judged against when its readings arrive.

The energy balance integrates readings on their own timestamps, so a node's clock decides what
the balance sees. A timestamp is believed only as far as the reading's arrival allows: every
reading of a node arrives some network delay after it was taken, so `arrival - ts` is at least
the node's clock offset. The least value seen is that offset; a reading stamped after its arrival
(by more than a tolerance) or not after its meter's previous reading is refused, counted, and
changes nothing. One such reading, whoever sent it, therefore cannot move the balance's time.

A clock that really jumped (set to local time and later to UTC, synchronised for the first
time, reset by a reboot without NTP) sends several readings that agree with each other and
with their arrival, but not with the node's earlier time: after `JUMP_CONFIRMATIONS` of them
the node's time base is shifted by the jump, and the balance continues where it was.

Arrival times come from any steady clock of the receiver; only their differences matter.
Pure Python: no Home Assistant import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

# How far a reading may be stamped after its arrival, on the node's learned offset: network
# jitter and the node's own clock corrections are far smaller.
AHEAD_TOLERANCE_S: Final = 2.0
# Consecutive readings that must agree on a new time base before a jump is believed.
JUMP_CONFIRMATIONS: Final = 3
# How closely those readings must agree (their arrivals jitter as much as the network).
JUMP_AGREEMENT_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class Placed:
    """A reading's time on the node's consistent time base; `jump` is the shift (s) applied to
    the node's clock by this reading, when it confirmed a jump."""

    ts: float
    jump: float | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """A reading whose timestamp is not believed; `counted` is False for a broker's replay of
    a retained reading, which is no fault of the node."""

    reason: str
    counted: bool = True


@dataclass(slots=True)
class NodeClock:
    """Places one node's readings in time. One instance per node; not thread-safe."""

    shift: float = 0.0  # added to the node's timestamps since its last confirmed jump
    offset: float | None = None  # least `arrival - (ts + shift)` seen: delay + clock offset
    refused: int = 0  # readings refused for their timestamp
    jumps: int = 0  # confirmed clock jumps
    _last: dict[str, float] = field(default_factory=dict)  # per meter: its latest placed time
    # Per meter: the shift its latest refused readings agree on, and how many of them do. Per
    # meter, so that readings of another meter cannot keep a refused one from being heard.
    _candidates: dict[str, tuple[float, int]] = field(default_factory=dict)

    def place(
        self, meter: str, ts: float, arrival: float, *, retained: bool = False
    ) -> Placed | Refused:
        """Judge the timestamp of one reading of `meter`, which arrived at `arrival`."""
        placed = ts + self.shift
        previous = self._last.get(meter)
        if self.offset is None:
            if previous is not None and placed <= previous:
                return Refused("timestamp not after the previous reading", counted=not retained)
            # A retained reading may be hours old: only a live one tells the offset.
            if not retained:
                self.offset = arrival - placed
            self._last[meter] = placed
            return Placed(placed)
        ahead = placed + self.offset - arrival
        if ahead <= AHEAD_TOLERANCE_S and (previous is None or placed > previous):
            self.offset = min(self.offset, arrival - placed)
            self._last[meter] = placed
            self._candidates.pop(meter, None)
            return Placed(placed)
        if ahead > AHEAD_TOLERANCE_S:
            reason = f"timestamp {ahead:.3g} s after its arrival"
        else:
            reason = "timestamp not after the previous reading"
        if retained:
            return Refused(reason, counted=False)
        return self._jump(meter, ts, arrival, reason)

    def _jump(self, meter: str, ts: float, arrival: float, reason: str) -> Placed | Refused:
        """Count a refused reading towards a jump of the node's clock; confirm it when enough
        consecutive readings agree on where their arrivals put them."""
        assert self.offset is not None
        shift = arrival - self.offset - ts  # the shift that places this reading at its arrival
        candidate = self._candidates.get(meter)
        agreeing = 1
        if candidate is not None and abs(shift - candidate[0]) <= JUMP_AGREEMENT_S:
            agreeing = candidate[1] + 1
        if agreeing < JUMP_CONFIRMATIONS:
            self._candidates[meter] = (shift, agreeing)
            self.refused += 1
            return Refused(reason)
        jump = shift - self.shift
        self.shift = shift
        self.jumps += 1
        self._candidates.clear()
        placed = ts + shift
        # Readings placed before the jump stay before it: the new base starts after them all.
        latest = max(self._last.values(), default=placed)
        if placed <= latest:
            self.shift += latest - placed + 1e-3
            placed = ts + self.shift
        self._last[meter] = placed
        return Placed(placed, jump)
