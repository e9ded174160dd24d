"""The ceiling: the same broker stream consumed by a bare aiomqtt loop that only decodes."""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass

import aiomqtt

from custom_components.smart_energy_meter.semcore import protocol as p


@dataclass(frozen=True)
class Figures:
    """What one consumer achieved over a measurement window."""

    messages: int
    seconds: float
    cpu_seconds: float
    latencies_ms: list[float]

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


def cpu_time() -> float:
    """User + system CPU seconds of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def consume(host: str, port: int, prefix: str, warmup: float, seconds: float) -> Figures:
    """Decode every snapshot for `seconds` after `warmup`; measure rate, latency and CPU."""
    latencies: list[float] = []
    count = 0
    async with aiomqtt.Client(host, port, identifier="bench-ceiling") as client:
        await client.subscribe(f"{prefix}/+/+/state", qos=0)
        start = time.monotonic() + warmup
        end = start + seconds
        cpu0 = None

        async def loop() -> None:
            nonlocal count, cpu0
            async for message in client.messages:
                now = time.monotonic()
                if now >= end:
                    return
                decoded = p.decode(
                    prefix, message.topic.value, bytes(message.payload),  # type: ignore[arg-type]
                    retained=message.retain,
                )  # fmt: skip
                if now < start or message.retain or not isinstance(decoded, p.Snapshot):
                    continue
                if cpu0 is None:
                    cpu0 = cpu_time()
                count += 1
                latencies.append((time.time() - decoded.ts) * 1000)

        await asyncio.wait_for(loop(), warmup + seconds + 30)
        cpu = cpu_time() - (cpu0 if cpu0 is not None else cpu_time())
    return Figures(count, seconds, cpu, latencies)
