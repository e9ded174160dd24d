"""Pairing the line and house readings of one poll cycle (semcore/pairing.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from custom_components.smart_energy_meter.semcore.pairing import CyclePairing, cycle_tolerance
from custom_components.smart_energy_meter.semcore.protocol import Role

LINE, HOUSE = Role.LINE, Role.HOUSE


@dataclass(frozen=True)
class Read:
    cycle: int
    ts: float


def test_the_tolerance_is_half_the_poll_interval_at_most_the_cap() -> None:
    assert cycle_tolerance(1.0, 2.0) == 0.5
    assert cycle_tolerance(10.0, 2.0) == 2.0
    assert cycle_tolerance(None, 2.0) == 2.0
    assert cycle_tolerance(0.0, 2.0) == 2.0  # no interval known: only the cap


def test_the_second_reading_of_a_cycle_completes_it_each_reading_once() -> None:
    pairing: CyclePairing[Read] = CyclePairing()
    assert pairing.add(LINE, Read(0, 0.0), 0.5) is None
    assert pairing.add(HOUSE, Read(0, 0.05), 0.5) == (Read(0, 0.0), Read(0, 0.05))
    # The next cycle's line reading waits: the house reading of cycle 0 is used up.
    assert pairing.add(LINE, Read(1, 1.0), 0.5) is None
    assert pairing.latest(HOUSE) == Read(0, 0.05)
    # House first works the same, and the pair comes out line first.
    assert pairing.add(HOUSE, Read(1, 1.05), 0.5) == (Read(1, 1.0), Read(1, 1.05))
    assert pairing.add(HOUSE, Read(2, 2.0), 0.5) is None
    assert pairing.add(LINE, Read(2, 2.05), 0.5) == (Read(2, 2.05), Read(2, 2.0))


def test_a_reading_whose_partner_never_came_is_not_paired_with_a_later_cycle() -> None:
    pairing: CyclePairing[Read] = CyclePairing()
    assert pairing.add(HOUSE, Read(0, 0.05), 0.5) is None  # the line meter missed cycle 0
    assert pairing.add(LINE, Read(1, 1.0), 0.5) is None  # 0.95 s apart: another cycle
    assert pairing.add(HOUSE, Read(1, 1.05), 0.5) == (Read(1, 1.0), Read(1, 1.05))
    # A cap wider than the cycle would have paired cycle 1's line with cycle 0's house.
    wide: CyclePairing[Read] = CyclePairing()
    wide.add(HOUSE, Read(0, 0.05), 2.0)
    assert wide.add(LINE, Read(1, 1.0), 2.0) == (Read(1, 1.0), Read(0, 0.05))


def test_clear_forgets_everything() -> None:
    pairing: CyclePairing[Read] = CyclePairing()
    pairing.add(LINE, Read(0, 0.0), 0.5)
    pairing.clear()
    assert pairing.latest(LINE) is None
    assert pairing.add(HOUSE, Read(0, 0.05), 0.5) is None


@given(
    seed=st.integers(0, 2**32 - 1),
    cycles=st.integers(1, 60),
    interval=st.sampled_from([1.0, 2.0, 5.0, 10.0]),
    missing=st.floats(0.0, 0.5),
)
def test_only_readings_of_one_cycle_are_ever_paired(
    seed: int, cycles: int, interval: float, missing: float
) -> None:
    """Either meter read first, reads up to 40 % of the interval apart, readings missing: every
    pair handed out is of one cycle, each reading at most once, and every complete cycle is."""
    rng = random.Random(seed)
    pairing: CyclePairing[Read] = CyclePairing()
    tolerance = cycle_tolerance(interval, 1000.0)
    paired: list[tuple[Read, Read]] = []
    complete = 0
    for cycle in range(cycles):
        start = cycle * interval + rng.uniform(0.0, 0.05 * interval)
        gap = rng.uniform(0.0, 0.4 * interval)
        reads = [(LINE, Read(cycle, start)), (HOUSE, Read(cycle, start + gap))]
        if rng.random() < 0.5:
            reads.reverse()
        reads = [read for read in reads if rng.random() >= missing]
        complete += len(reads) == 2
        for role, read in reads:
            if (both := pairing.add(role, read, tolerance)) is not None:
                paired.append(both)
    assert all(line.cycle == house.cycle for line, house in paired)
    assert len({line for line, _ in paired}) == len(paired)
    assert len(paired) == complete
