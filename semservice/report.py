"""The report: the pairs flagged now, since when, and their unaccounted energy per day.

Read from the partitions' checkpoints (what a replacement worker would continue from), so it
needs no worker to answer; it is at most one checkpoint interval behind (after a takeover, until
the new owner has caught up and checkpointed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from custom_components.smart_energy_meter.semcore.debounce import Status

from .pairs import Overrides
from .partition import PartitionState


@dataclass(frozen=True, slots=True)
class FlaggedPair:
    """One pair the balance says is stolen from."""

    pair: str
    name: str
    since: float | None
    days: dict[str, float]  # unaccounted Wh per UTC day


@dataclass(frozen=True, slots=True)
class Report:
    """What the checkpoints say."""

    partitions: int
    pairs: int
    readings: int
    flagged: list[FlaggedPair]
    statuses: dict[str, int]


async def read_report(checkpoints: KeyValue, prefix: str, partitions: int) -> Report:
    """Gather the report from every partition's checkpoint."""
    flagged: list[FlaggedPair] = []
    statuses: dict[str, int] = {}
    pairs = readings = found = 0
    for partition in range(partitions):
        try:
            entry = await checkpoints.get(f"p{partition}")
        except KeyNotFoundError:
            continue
        if entry.value is None:
            continue
        state = PartitionState.restore(entry.value, partition, prefix, Overrides())
        found += 1
        pairs += len(state.pairs)
        readings += state.readings
        for key, pair in state.pairs.items():
            status = pair.status
            statuses[status.value] = statuses.get(status.value, 0) + 1
            if status is Status.THEFT:
                flagged.append(FlaggedPair(key, pair.name, pair.since, dict(pair.days)))
    flagged.sort(key=lambda f: (f.since or 0.0, f.pair))
    return Report(found, pairs, readings, flagged, statuses)


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def render(report: Report) -> str:
    """The report as text."""
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(report.statuses.items()))
    lines = [
        f"Pairs: {report.pairs} in {report.partitions} partitions ({statuses or 'none yet'}); "
        f"{report.readings} messages applied",
        f"Flagged: {len(report.flagged)}",
    ]
    if report.flagged:
        lines.append(f"{'pair':<24} {'name':<20} {'since (UTC)':<19}  unaccounted kWh per day")
    for pair in report.flagged:
        days = ", ".join(f"{day} {wh / 1000:.3f}" for day, wh in sorted(pair.days.items()))
        lines.append(f"{pair.pair:<24} {pair.name[:20]:<20} {_when(pair.since):<19}  {days}")
    return "\n".join(lines)
