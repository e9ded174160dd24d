"""What a measurement window yields, and the counters both consumers share."""

from __future__ import annotations

import asyncio
import gc
import resource
import statistics
import time
from dataclasses import dataclass, field
from typing import Any


def cpu_time() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Figures:
    """What one consumer achieved over one measurement window."""

    messages: int
    seconds: float
    cpu_seconds: float
    latencies_ms: list[float]
    offered: float  # snapshots/s the publisher sent during the window
    full_gcs: int  # collections of the oldest generation during the window
    longest_gc_ms: float
    state_writes: int  # Home Assistant: every entity's state writes during the window

    @property
    def writes_per_snapshot(self) -> float:
        return self.state_writes / self.messages if self.messages else float("nan")

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def cpu_per_1000(self) -> float:
        return 1000 * self.cpu_seconds / self.messages if self.messages else float("nan")


@dataclass
class Counter:
    """Snapshots a consumer processed while counting, with their latencies."""

    counting: bool = False
    count: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    state_writes: int = 0

    def processed(self, ts: float | None) -> None:
        if not self.counting:
            return
        self.count += 1
        if ts is not None:
            self.latencies_ms.append((time.time() - ts) * 1000)


class GcWatch:
    """Counts full collections and the longest pause of the garbage collector."""

    def __init__(self) -> None:
        self.full = 0
        self.longest = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.longest = max(self.longest, time.perf_counter() - self._started)
        if info["generation"] == 2:
            self.full += 1


class Offered:
    """The snapshots the publisher process reports having sent ("<sent> <monotonic>" lines)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.sent = 0
        self.at = time.monotonic()
        self.seq = 0  # the reading number being sent
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            sent, at, seq = line.split()
            self.sent, self.at, self.seq = int(sent), float(at), int(seq)

    def now(self) -> tuple[int, float]:
        return self.sent, self.at


async def window(counter: Counter, offered: Offered, seconds: float) -> Figures:
    """Count what the consumer processes for `seconds`."""
    watch = GcWatch()
    counter.count, counter.latencies_ms, counter.state_writes = 0, [], 0
    sent0, at0 = offered.now()
    gc.callbacks.append(watch)
    cpu0 = cpu_time()
    counter.counting = True
    try:
        await asyncio.sleep(seconds)
    finally:
        counter.counting = False
        cpu = cpu_time() - cpu0
        gc.callbacks.remove(watch)
    sent1, at1 = offered.now()
    rate = (sent1 - sent0) / (at1 - at0) if at1 > at0 else float("nan")
    return Figures(
        counter.count,
        seconds,
        cpu,
        counter.latencies_ms,
        rate,
        watch.full,
        watch.longest * 1000,
        counter.state_writes,
    )


async def drained(counter: Counter, within: float, latency_ms: float = 50.0) -> float:
    """Wait until a second goes by whose median latency is below `latency_ms`: the backlog of
    the start-up is gone. Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        counter.count, counter.latencies_ms = 0, []
        counter.counting = True
        await asyncio.sleep(1.0)
        counter.counting = False
        latencies = sorted(counter.latencies_ms)
        if latencies and latencies[len(latencies) // 2] < latency_ms:
            break
    return time.monotonic() - started


def spread(values: list[float], digits: int) -> str:
    """Median, and the range when there is more than one run."""
    values = [v for v in values if v == v]  # noqa: PLR0124 (drop NaN)
    if not values:
        return "n/a"
    median = f"{statistics.median(values):.{digits}f}"
    if len(values) == 1:
        return median
    return f"{median} ({min(values):.{digits}f} to {max(values):.{digits}f})"
